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

Sends and checks are written by the process's OTP writer (``otp/group.py`` on
``db/groupcommit.py``): every request waiting is written in one transaction and
answered after its commit. The key is checked here first, against a cache of
the integrations' keys that is at most ``KEY_TTL`` seconds old (the writer then
checks the integration's state in its own transaction).

A send returns once the vendor took the message: the send path's sync mode
(``api/waiting.py`` waits for the worker's submit result). A message the
vendor refused is 502 (``otp-failed``, with the requestId); one still waiting
after ``SYNC_TIMEOUT`` seconds is answered 200 and leaves when a worker sends it.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from cpaas_cli.api import waiting
from cpaas_cli.api.problems import ProblemError, Unauthenticated
from cpaas_cli.db.engine import make_session, session_scope
from cpaas_cli.db.groupcommit import GroupCommit
from cpaas_cli.dispatch.queue import QueueState
from cpaas_cli.errors import InvalidInput, NotFound, Problem
from cpaas_cli.models.otp import OtpIntegration
from cpaas_cli.otp import codes, group, integrations
from cpaas_cli.otp import requests as otp

router = APIRouter(tags=["2fa"])

SYNC_TIMEOUT = 10.0  # seconds a send waits for the vendor's submit_sm_resp
MAX_FIELD = 200
KEY_TTL = 1.0  # seconds an integration's key, state and side are reused from the cache
KEY_CACHE_MAX = 10_000
# A busy writer of OTP sends waits this long for more before it writes a group (db/groupcommit.py):
# measured with benchmarks/otp.py at 200 sends/s on SQLite, 0 → 93/s (4.2 sends per group),
# 0.01 → 123/s, 0.02 → 125/s, 0.04 → 131/s; an idle writer writes a lone request at once.
GATHER_S = 0.02
I = OtpIntegration.__table__  # noqa: E741


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


@dataclass(frozen=True)
class _Key:
    integration_id: int
    secret_hash: str
    state: str
    mode: str
    channel: str
    read_at: float


def _read_key(engine, key_id: str) -> _Key | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(I.c.id, I.c.secret_hash, I.c.state, I.c.mode, I.c.channel).where(I.c.key_id == key_id)
        ).first()
    return None if row is None else _Key(row.id, row.secret_hash, row.state, row.mode, row.channel, time.monotonic())


async def _integration(request: Request) -> _Key:
    """The request's integration (401 for no key or an unknown one, 403 when not active),
    from the key cache (``KEY_TTL``); a key not in it is read in a thread of the pool."""
    text = _key_text(request)
    if not text:
        raise Unauthenticated("an API key is required: HTTP Basic (curl -u <API key>) or Bearer")
    parts = codes.split_key(text)
    if parts is None:
        raise Unauthenticated("unknown API key")
    state = request.app.state.api
    cache: dict[str, _Key] = state.extra.setdefault("otp_key_cache", {})
    got = cache.get(parts[0])
    if got is None or time.monotonic() - got.read_at > KEY_TTL:
        got = await run_in_threadpool(_read_key, state.engine, parts[0])
        if got is None:
            cache.pop(parts[0], None)
            raise Unauthenticated("unknown API key")
        if len(cache) >= KEY_CACHE_MAX:
            cache.clear()
        cache[parts[0]] = got
    if not codes.key_matches(_keys(request), parts[1], got.secret_hash):
        raise Unauthenticated("unknown API key")
    request.state.key_prefix = parts[0][:8]
    if got.state != "active":
        raise ProblemError(403, "integration-inactive", f"the 2FA integration is {got.state}, not active")
    return got


def _writer(request: Request, kind: str) -> GroupCommit:
    """The process's writer of OTP sends (``send``) or of checks (``check``), made at the first.
    Two writers, so that only sends gather (``GATHER_S``): a check is answered at once."""
    state = request.app.state.api
    name = f"otp_{kind}_writer"
    writer = state.extra.get(name)
    if writer is None:
        engine, keys = state.engine, _keys(request)
        writer = state.extra[name] = GroupCommit(
            engine,
            lambda session, items: group.handle(session, items, keys=keys),
            name=f"api-otp-{kind}",
            session_factory=lambda e: make_session(e, actor="api 2fa", command="api 2fa"),
            inline=engine.dialect.name == "sqlite",  # see db/groupcommit.py
            gather=GATHER_S if kind == "send" else 0.0,
        )
    return writer


async def _write(request: Request, item: group.Send | group.Check) -> Any:
    """The item's answer, once the group holding it is committed."""
    try:
        return await _writer(request, "check" if isinstance(item, group.Check) else "send").submit(item)
    except group.StaleKey:
        request.app.state.api.extra.get("otp_key_cache", {}).clear()
        raise Unauthenticated("unknown API key") from None


async def _send(request: Request, side: str) -> JSONResponse:
    fields = await _fields(request)
    key = await _integration(request)
    if key.channel != "sms":  # the e-mail channel has its own routes (below)
        raise ProblemError(409, "otp-wrong-channel", _wrong_channel(key))
    if key.mode != side:
        other = "verify" if key.mode == "platform" else "send"
        raise ProblemError(409, "otp-wrong-mode", f"this integration is {key.mode} side: POST /api/v1/2fa/{other}/sms")
    code = _required(fields, "code") if side == "client" else fields.get("code")
    item = group.Send(key.integration_id, key.secret_hash, side, _required(fields, "number"), code)
    accepted: otp.Accepted = await _write(request, item)
    if await _settle(request.app.state.api.engine, accepted) == "FAILED":
        raise ProblemError(502, "otp-failed", "the vendor refused the message", requestId=accepted.request_id)
    return JSONResponse({"requestId": accepted.request_id})


async def _settle(engine, accepted: otp.Accepted) -> str | None:
    """Wait for the vendor's answer holding no thread (``api/waiting.py``): SENT, FAILED, or
    None when none came in time. The worker that stored the answer recorded the request's
    result with it; a row failed by someone else (an operator's cancel) is recorded here."""
    qid = accepted.queue_id
    if qid is None:
        return None
    got = await waiting.submitted(engine, [qid], timeout=SYNC_TIMEOUT)
    state = (got.get(qid) or {}).get("state")
    if state == QueueState.FAILED:
        await run_in_threadpool(otp.settle, engine, accepted.request_id, qid, timeout=0)
        return "FAILED"
    return "SENT" if state in (QueueState.SUBMITTED, QueueState.DONE) else None


@router.post("/api/v1/2fa/send/sms", summary="Client side: send the client's code to a number")
async def send_client(request: Request) -> JSONResponse:
    return await _send(request, "client")


@router.post("/api/v1/2fa/verify/sms", summary="Platform side: make a code and send it to a number")
async def send_platform(request: Request) -> JSONResponse:
    return await _send(request, "platform")


@router.post("/api/v1/2fa/verify", summary="Platform side: check the code a user typed")
async def verify(request: Request) -> JSONResponse:
    fields = await _fields(request)
    key = await _integration(request)
    item = group.Check(key.integration_id, key.secret_hash, _required(fields, "requestId"), fields.get("code"))
    checked: otp.Checked = await _write(request, item)  # committed: a wrong code still counts
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


def _wrong_channel(integration: OtpIntegration | _Key) -> str:
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
