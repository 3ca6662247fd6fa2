"""RFC 9457 problem documents (``application/problem+json``) for every error.

The project's error classes map to HTTP statuses as its exit codes do to the
shell; each problem has a stable ``type`` URI (``urn:cpaas:problem:<name>``)
that clients may branch on. An object outside the caller's tenant scope is
answered as not found (404), never as forbidden, so its existence is not told.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cpaas_cli.errors import (
    Conflict,
    CpaasError,
    Denied,
    InsufficientCredit,
    InvalidInput,
    NotFound,
    TooMany,
    Upstream,
    UsageError,
    bounded,
)
from cpaas_cli.sending.mo import MoRefused

log = logging.getLogger("cpaas.api")

MEDIA_TYPE = "application/problem+json"
_TAG = re.compile(r"^[A-Z]\w*$|.*\[")
PREFIX = "urn:cpaas:problem:"


class Unauthenticated(Denied):
    """No credentials, or credentials that were refused (HTTP 401)."""


class ProblemError(CpaasError):
    """An API-only refusal with its own status and type (e.g. an Idempotency-Key reused)."""

    def __init__(self, status: int, name: str, message: str, **fields: Any):
        super().__init__(message)
        self.status = status
        self.name = name
        self.fields = fields


# (class, HTTP status, type name, title); the first match wins (subclasses first).
MAPPING: tuple[tuple[type[CpaasError], int, str, str], ...] = (
    (Unauthenticated, 401, "unauthenticated", "Authentication required"),
    (Denied, 403, "forbidden", "Not permitted"),
    (NotFound, 404, "not-found", "Not found"),
    (MoRefused, 400, "mo-off", "MO messages mode is off"),  # or mo-flash (its problem_type)
    (TooMany, 429, "too-many-attempts", "Too many attempts"),
    (Conflict, 409, "conflict", "Conflict"),
    (InvalidInput, 422, "invalid-input", "Invalid input"),
    (UsageError, 422, "invalid-input", "Invalid input"),
    (InsufficientCredit, 402, "insufficient-credit", "Insufficient credit"),
    (Upstream, 502, "upstream", "Vendor failure"),
)
TITLES = {name: title for _c, _s, name, title in MAPPING} | {
    "error": "Internal error",
    "http": "HTTP error",
    "not-ready": "Not ready",
    "mo-off": "MO messages mode is off",
    "mo-flash": "MO and flash do not go together",
    "method-not-allowed": "Method not allowed",
    "idempotency-conflict": "Idempotency-Key reused with another body",
    "payload-too-large": "Payload too large",
    "unsupported-media-type": "Unsupported media type",
    # OTP / 2FA (api/otp.py)
    "otp-send-limit": "Too many codes sent to this number",
    "otp-check-limit": "Too many checks of this code",
    "otp-code-mismatch": "Wrong code",
    "otp-expired": "The code expired",
    "otp-used": "The code was already used",
    "otp-cancelled": "A newer code replaced this one",
    "otp-failed": "The code could not be sent",
    "otp-wrong-mode": "Not available for this integration's mode",
    "otp-wrong-channel": "Not available for this integration's channel",
    "otp-not-priced": "The code cannot be priced",
    "otp-email-unavailable": "E-mail codes cannot be sent",
    "integration-inactive": "The integration is not active",
}


def type_uri(name: str) -> str:
    return PREFIX + name


def problem(status: int, name: str, detail: str, *, instance: str | None = None, **fields: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_uri(name),
        "title": TITLES.get(name, name),
        "status": status,
        "detail": bounded(detail),
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in fields.items() if v is not None})
    headers = {"WWW-Authenticate": 'Bearer realm="cpaas"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(exc: CpaasError, instance: str | None = None) -> JSONResponse:
    fields: dict[str, Any] = {}
    if exc.problems:
        fields["problems"] = [p.as_dict() for p in exc.problems]
    fields.update(getattr(exc, "problem_fields", None) or {})
    if isinstance(exc, ProblemError):
        return problem(exc.status, exc.name, exc.message, instance=instance, **{**fields, **exc.fields})
    for cls, status, name, _title in MAPPING:
        if isinstance(exc, cls):
            name = getattr(exc, "problem_type", None) or name  # a narrower type of the same status
            return problem(status, name, exc.message, instance=instance, **fields)
    log.error("unmapped error on %s: %s", instance, exc.message)
    return problem(500, "error", exc.message, instance=instance, **fields)


def install(app: FastAPI) -> None:
    """The handlers that turn every error into a problem document."""

    @app.exception_handler(CpaasError)
    async def _cpaas(request: Request, exc: CpaasError) -> JSONResponse:
        return from_error(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors()[:50]:
            # without "body"/"query" and the union member tags pydantic adds ("MessageIn", "list[...]")
            loc = [str(p) for p in e.get("loc", ())[1:] if not _TAG.match(str(p))]
            problems.append({"row": None, "field": ".".join(loc) or "body", "message": bounded(str(e.get("msg")))})
        first = problems[0] if problems else {"field": "body", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        return problem(422, "invalid-input", detail, instance=request.url.path, problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated", 403: "forbidden"}
        return problem(exc.status_code, names.get(exc.status_code, "http"), str(exc.detail), instance=request.url.path)
