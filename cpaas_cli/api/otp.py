"""The 2FA messaging API (SPEC OTP-03..06), the seed's endpoints and shapes:

* ``POST /api/v1/2fa/send/sms`` (client side: number, code) → ``{requestId}``;
* ``POST /api/v1/2fa/verify/sms`` (platform side: number) → ``{requestId}``;
* ``POST /api/v1/2fa/verify`` (requestId, code) → ``{number, verifiedAt}``;
* ``GET /api/v1/2fa/requests/{requestId}`` → the request, its rate and status;
* ``POST /api/v1/2fa/send/email`` (client side: email, code) and
  ``POST /api/v1/2fa/verify/email`` (platform side: email) → ``{requestId}``: the
  e-mail channel (``otp/email_channel.py``); verify and lookup are the same routes.
  An integration answers only the routes of its channel (409 ``otp-wrong-channel``).

Authentication: the integration's API key ``<key id>:<secret>`` as HTTP Basic
credentials (``curl -u <API key>`` sends the key id as user, the secret as
password) or as ``Authorization: Bearer <API key>``. An unknown key is 401; a
Draft or Blocked integration is 403 (``integration-inactive``). Bodies are
form-encoded (the seed's ``curl -d``) or JSON.

A send returns once the vendor took the message: the send path's sync mode
(``otp.requests.settle`` waits for the worker's submit result). A message the
vendor refused is 502 (``otp-failed``, with the requestId); one still waiting
after ``SYNC_TIMEOUT`` seconds is answered 200 and leaves when a worker sends it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from cpaas_cli.api import waiting
from cpaas_cli.api.problems import ProblemError, Unauthenticated
from cpaas_cli.db.engine import session_scope
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.models.otp import OtpIntegration
from cpaas_cli.otp import integrations
from cpaas_cli.otp import requests as otp

router = APIRouter(tags=["2fa"])

SYNC_TIMEOUT = 10.0  # seconds a send waits for the vendor's submit_sm_resp
MAX_FIELD = 200


def _key_text(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _keys(request: Request):
    state = request.app.state.api
    got = state.extra.get("otp_keys")
    if got is None:
        from cpaas_cli.identity import keys

        got = state.extra["otp_keys"] = keys.load(state.settings)
    return got


@contextmanager
def _session(request: Request) -> Iterator[tuple[Session, OtpIntegration]]:
    """The integration of the request's key and a session whose transaction commits on success."""
    text = _key_text(request)
    if not text:
        raise Unauthenticated("an API key is required: HTTP Basic (curl -u <API key>) or Bearer")
    engine = request.app.state.api.engine
    with session_scope(engine, actor="api 2fa", command=f"api {request.method} {request.url.path}"[:200]) as s:
        try:
            integration = integrations.authenticate(s, _keys(request), text)
        except NotFound:
            raise Unauthenticated("unknown API key") from None
        request.state.key_prefix = integration.key_id[:8]
        if integration.state != "active":
            raise ProblemError(403, "integration-inactive", f"the 2FA integration is {integration.state}, not active")
        yield s, integration


async def _fields(request: Request) -> dict[str, str]:
    """The body's fields: JSON (an object) or form-encoded."""
    raw = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise InvalidInput("the body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("the body must be a JSON object")
        out = {k: v for k, v in data.items() if isinstance(v, str | int) and not isinstance(v, bool)}
        return {k: str(v)[: MAX_FIELD + 1] for k, v in out.items()}
    try:
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the body is not form-encoded (number=…&code=…) or JSON") from None
    return {k: v[0][: MAX_FIELD + 1] for k, v in form.items() if v}


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None or not value.strip():
        problem = Problem(name, "required")
        raise InvalidInput(str(problem), problems=[problem])
    if len(value) > MAX_FIELD:
        problem = Problem(name, f"at most {MAX_FIELD} characters")
        raise InvalidInput(str(problem), problems=[problem])
    return value.strip()


async def _send(request: Request, mode: str) -> JSONResponse:
    fields = await _fields(request)

    def work() -> otp.Accepted:
        with _session(request) as (s, integration):
            if integration.channel != "sms":  # the e-mail channel has its own routes (below)
                raise ProblemError(409, "otp-wrong-channel", _wrong_channel(integration))
            if integration.mode != mode:
                other = "verify" if integration.mode == "platform" else "send"
                raise ProblemError(
                    409, "otp-wrong-mode", f"this integration is {integration.mode} side: POST /api/v1/2fa/{other}/sms"
                )
            code = _required(fields, "code") if mode == "client" else fields.get("code")
            return otp.send(s, _keys(request), integration, number=_required(fields, "number"), code=code)

    accepted = await run_in_threadpool(work)
    status = await _settle(request.app.state.api.engine, accepted)
    if status == "FAILED":
        raise ProblemError(502, "otp-failed", "the vendor refused the message", requestId=accepted.request_id)
    return JSONResponse({"requestId": accepted.request_id})


async def _settle(engine, accepted: otp.Accepted) -> str | None:
    """Wait for the vendor's answer holding no thread (``api/waiting.py``), then record the
    result (``otp.settle``: one look, no wait)."""
    if accepted.queue_id is None:
        return None
    await waiting.submitted(engine, [accepted.queue_id], timeout=SYNC_TIMEOUT)
    return await run_in_threadpool(otp.settle, engine, accepted.request_id, accepted.queue_id, timeout=0)


@router.post("/api/v1/2fa/send/sms", summary="Client side: send the client's code to a number")
async def send_client(request: Request) -> JSONResponse:
    return await _send(request, "client")


@router.post("/api/v1/2fa/verify/sms", summary="Platform side: make a code and send it to a number")
async def send_platform(request: Request) -> JSONResponse:
    return await _send(request, "platform")


@router.post("/api/v1/2fa/verify", summary="Platform side: check the code a user typed")
async def verify(request: Request) -> JSONResponse:
    fields = await _fields(request)

    def work() -> otp.Checked:
        with _session(request) as (s, integration):
            return otp.verify(
                s, _keys(request), integration, request_id=_required(fields, "requestId"), code=fields.get("code")
            )

    checked = await run_in_threadpool(work)  # committed: a wrong code still counts
    if checked.error is not None:
        raise checked.error
    assert checked.verified_at is not None
    where = "email" if checked.channel == "email" else "number"
    return JSONResponse({where: checked.number, "verifiedAt": int(checked.verified_at.timestamp())})


@router.get("/api/v1/2fa/requests/{request_id}", summary="One request: number, rate, billable, status, sender")
async def lookup(request: Request, request_id: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with _session(request) as (s, integration):
            return otp.lookup(s, integration, request_id)

    return await run_in_threadpool(work)


# ---- the e-mail channel (otp/email_channel.py) ---------------------------------------------


def _wrong_channel(integration: OtpIntegration) -> str:
    verb = "verify" if integration.mode == "platform" else "send"
    field = "email" if integration.channel == "email" else "number"
    return (f"this integration sends by {integration.channel}: POST /api/v1/2fa/{verb}/{integration.channel} "
            f"with {field}=")  # fmt: skip


async def _send_email(request: Request, mode: str) -> JSONResponse:
    """Write and charge the request (a pool thread), then send the e-mail in a pool thread too:
    the SMTP conversation never runs in the event loop. 502 ``otp-failed`` when the SMTP
    server refused it (the request FAILED, its charge refunded)."""
    from cpaas_cli.otp import email_channel

    fields = await _fields(request)
    state = request.app.state.api

    def work() -> tuple[email_channel.Prepared, Any]:
        with _session(request) as (s, integration):
            if integration.channel != "email":
                raise ProblemError(409, "otp-wrong-channel", _wrong_channel(integration))
            if integration.mode != mode:
                other = "verify" if integration.mode == "platform" else "send"
                raise ProblemError(
                    409,
                    "otp-wrong-mode",
                    f"this integration is {integration.mode} side: POST /api/v1/2fa/{other}/email",
                )
            code = _required(fields, "code") if mode == "client" else fields.get("code")
            address = _required(fields, "email")
            try:
                smtp = email_channel.smtp_settings(state.settings.section("smtp"))
            except InvalidInput as exc:
                raise ProblemError(
                    503, "otp-email-unavailable", f"e-mail codes cannot be sent: {exc.message}"
                ) from None
            return email_channel.prepare(s, _keys(request), integration, address=address, code=code), smtp

    prepared, smtp = await run_in_threadpool(work)
    status = await run_in_threadpool(email_channel.deliver, state.engine, prepared, smtp)
    if status == "FAILED":
        raise ProblemError(502, "otp-failed", "the SMTP server did not take the e-mail", requestId=prepared.request_id)
    return JSONResponse({"requestId": prepared.request_id})


@router.post("/api/v1/2fa/send/email", summary="Client side: e-mail the client's code to an address")
async def send_client_email(request: Request) -> JSONResponse:
    return await _send_email(request, "client")


@router.post("/api/v1/2fa/verify/email", summary="Platform side: make a code and e-mail it to an address")
async def send_platform_email(request: Request) -> JSONResponse:
    return await _send_email(request, "platform")
