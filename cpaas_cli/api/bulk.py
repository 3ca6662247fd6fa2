"""The personalised bulk API (SPEC CMP-26): ``POST /api/bulk_sms``.

A CSV body (``Content-Type: text/csv``) becomes a campaign that starts at
once: one row per recipient, the number in the ``to`` column (or the first
column), and either each row's own text in a ``message`` column or one
``message`` query parameter that may use the other columns as variables
(``{{ first_name }}``), as `cpaas campaign create --file` does.

Authentication is HTTP Basic with a user's login and password (identity
users; not a user with a second factor, which Basic cannot carry). The
seed's limits: 30 requests a minute per user (a token bucket in the
database, so every ``serve`` process counts the same requests), answered
429 with ``Retry-After``; at most 3,000 recipients a request (more is 422
``too-many-recipients``: retrying the same request later cannot succeed,
so 429 would mislead a client into retrying). No callback URL (the seed's
"no callback URL parameter"): these messages have no API key.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlmodel import select

from cpaas_cli import clock
from cpaas_cli.api import problems
from cpaas_cli.api.problems import ProblemError, Unauthenticated
from cpaas_cli.db.engine import make_session
from cpaas_cli.errors import Denied, InvalidInput
from cpaas_cli.identity import access
from cpaas_cli.models.identity import AppUser
from cpaas_cli.ratelimit import Limit, retry_after, take_shared

router = APIRouter(tags=["bulk"])

REQUESTS_PER_MINUTE = 30
MAX_RECIPIENTS = 3000
PERMISSION = "campaign.send"
PHONE_COLUMNS = ("to", "phone", "dnis")


def _basic(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthenticated("HTTP Basic authentication with a user's login and password is required")
    try:
        login, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("malformed Basic credentials") from None
    if not sep or not login:
        raise Unauthenticated("malformed Basic credentials")
    return login[:60], password


def _user(s, login: str, password: str, ip: str | None) -> access.Principal:
    from cpaas_cli.identity import passwords
    from cpaas_cli.identity import sessions as signin

    user = s.exec(select(AppUser).where(AppUser.login == login)).first()
    try:
        if user is None:
            raise Denied("wrong login or password")
        if reason := access.blocked_reason(s, user):
            raise Denied(f"user {user.login!r} cannot sign in: {reason}")
        signin.check_password(s, user, password, ip=ip)
        if passwords.expired(user):
            raise Denied("the password must be changed first")
        if signin.needed_factor(s, user) is not None:
            raise Denied("a user with a second factor cannot use Basic authentication; use an API key")
    except Denied as exc:
        raise Unauthenticated(exc.message) from None
    return access.principal(s, user)


def _rows(body: bytes) -> tuple[list[str], int]:
    """The CSV header and the number of data rows (at most MAX_RECIPIENTS + 1 are counted)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("body: the CSV is not UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise InvalidInput("body: a CSV with a header row (to, message, …) is required")
    count = 0
    for row in reader:
        if any(cell.strip() for cell in row):
            count += 1
            if count > MAX_RECIPIENTS:
                break
    return [h.strip() for h in header], count


@router.post(
    "/api/bulk_sms",
    status_code=202,
    summary="Personalised bulk send from a CSV (HTTP Basic user/password)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
        "security": [{"basic": []}],
    },
)
async def bulk_sms(
    request: Request,
    sender: str = Query(..., alias="from", min_length=1, max_length=32, description="An active sender ID."),
    message: str | None = Query(None, max_length=2000, description="One text (template) for every row."),
    label: str | None = Query(None, max_length=100, description="Names the campaign."),
) -> Any:
    from starlette.concurrency import run_in_threadpool

    try:
        login, password = _basic(request)
        request.state.access_who = f"basic:{login}"
        body = await request.body()
        return await run_in_threadpool(_send, request, login, password, body, sender, message, label)
    except Unauthenticated as exc:
        resp = problems.from_error(exc, request.url.path)
        resp.headers["WWW-Authenticate"] = 'Basic realm="cpaas", charset="UTF-8"'
        return resp
    except ProblemError as exc:
        resp = problems.from_error(exc, request.url.path)
        if exc.status == 429:
            resp.headers["Retry-After"] = str(exc.fields["retry_after"])
        return resp


def _send(request: Request, login, password, body, sender, message, label) -> dict[str, Any]:
    from cpaas_cli.campaigns import drafts, lifecycle
    from cpaas_cli.campaigns.recipients import FileSource

    api = request.app.state.api
    ip = request.client.host if request.client else None
    # Authenticate and count the request in one short transaction of its own:
    # a refused request still counts, and the bucket's row lock is not held while the campaign is built.
    s = make_session(api.engine, actor=f"basic:{login}", command="api POST /api/bulk_sms")
    try:
        principal = _user(s, login, password, ip)
        ok, wait = take_shared(
            s, f"bulk:user:{principal.user_id}", Limit.per_minute(REQUESTS_PER_MINUTE), now=clock.now()
        )
        s.commit()
    finally:
        s.close()
    if not ok:
        raise ProblemError(
            429,
            "rate-limited",
            f"at most {REQUESTS_PER_MINUTE} bulk requests a minute; try again in {retry_after(wait)} s",
            retry_after=retry_after(wait),
        )
    access.require(principal, PERMISSION, principal.company_id, ip=ip)
    header, count = _rows(body)
    if count > MAX_RECIPIENTS:
        raise ProblemError(
            422, "too-many-recipients", f"at most {MAX_RECIPIENTS} recipients a request", limit=MAX_RECIPIENTS
        )
    if count == 0:
        raise InvalidInput("body: the CSV has no recipient rows")
    phone = next((h for h in header if h.lower() in PHONE_COLUMNS), header[0])
    maps = {"phone": phone}
    if message is None:
        text_col = next((h for h in header if h.lower() == "message"), None)
        if text_col is None:
            raise InvalidInput("body: give a 'message' column, or the message query parameter")
        maps["text"] = text_col
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="cpaas-bulk-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        s = make_session(api.engine, actor=principal.actor, command="api POST /api/bulk_sms")
        try:
            now = clock.now()
            c = drafts.create(
                s,
                company=principal.company_id,
                sender=sender,
                text=message,
                files=[FileSource(path, maps=maps)],
                name=f"API bulk {label or now.strftime('%Y-%m-%d %H:%M:%S')}"[:100],
            )
            outcome = lifecycle.send(s, c)
            result = {
                "campaign_id": c.id,
                "state": c.state,
                "recipients": c.recipients,
                "excluded": {
                    "stop_list": c.excluded_stop_list,
                    "invalid": c.excluded_invalid,
                    "duplicate": c.excluded_duplicate,
                },
                "started": outcome.started,
            }
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()
    finally:
        os.unlink(path)
    return result
