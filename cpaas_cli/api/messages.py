"""Sending: ``POST /v1/messages`` (single or batch, Idempotency-Key, async or sync)
and the seed's ``/api/send_sms`` (its parameters, rules and answer shape)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from cpaas_cli.api import waiting
from cpaas_cli.api.auth import Caller, CallerDep, authenticate, bearer_key, require, session, visible
from cpaas_cli.db.engine import make_session
from cpaas_cli.db.groupcommit import GroupCommit
from cpaas_cli.errors import CpaasError, InvalidInput, Problem
from cpaas_cli.sending import batch, idempotency, views
from cpaas_cli.sending import service as sending

router = APIRouter(tags=["messages"])

SYNC_TIMEOUT = 10.0  # seconds a sync send waits for the vendor's submit_sm_resp by default
MAX_SYNC_TIMEOUT = 30.0
MAX_BATCH = 100
LOOKUP_TTL = 1.0  # seconds a sender ID, hold, MO mode, moderation or rate tree is reused (sending.batch.Lookups)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=32, description="An active sender ID of the company.")
    to: str | list[str] = Field(description="E.164 digits without '+': one number or a list (at most 700).")
    text: str = Field(max_length=sending.MAX_TEXT)
    label: str | None = Field(None, max_length=sending.MAX_LABEL, description="Default: today's date (UTC).")
    channel: str = Field("sms", max_length=16)
    flash: bool = False
    accept_mo: bool = Field(False, description="Call the handset's replies back (the partner's MO mode must be on).")
    mode: Literal["async", "sync"] = "async"
    timeout: float | None = Field(None, gt=0, le=MAX_SYNC_TIMEOUT, description="sync: seconds to wait (default 10).")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_BATCH)


class MessageOut(BaseModel):
    id: str
    to: str
    status: str
    label: str | None = None
    vendor_message_id: str | None = None
    error: str | None = None


class RefusedOut(BaseModel):
    index: int
    to: str
    error: str


class MessagesOut(BaseModel):
    messages: list[MessageOut]
    errors: list[RefusedOut]


def _numbers(to: str | list[str], field_: str) -> list[str]:
    items = [to] if isinstance(to, str) else list(to)
    if not items or len(items) > sending.MAX_RECIPIENTS:
        problem = Problem(field_, f"1 to {sending.MAX_RECIPIENTS} numbers")
        raise InvalidInput(str(problem), problems=[problem])
    return items


def _message(m: MessageIn, where: str) -> batch.Message:
    """A message's text, label and number count checked before it goes to the writer."""
    try:
        text = sending.check_text(m.text, "text")
        label = sending.check_label(m.label)
        numbers = _numbers(m.to, f"{where}to")
    except CpaasError as exc:
        exc.message = f"{where}{exc.message}"
        raise
    return batch.Message(
        sender=m.from_, to=numbers, text=text, label=label, channel=m.channel.lower(), flash=m.flash,
        accept_mo=m.accept_mo,
    )  # fmt: skip


def _writer(request: Request) -> GroupCommit:
    """The process's one writer of send requests (group commit), made at the first send."""
    state = request.app.state.api
    writer = state.extra.get("sends")
    if writer is None:
        engine = state.engine
        writer = state.extra["sends"] = GroupCommit(
            engine,
            partial(batch.send_requests, answer=_answer, lookups=batch.Lookups(ttl=LOOKUP_TTL)),
            name="api-sends",
            session_factory=lambda e: make_session(e, actor="api", command="api POST /v1/messages"),
            inline=engine.dialect.name == "sqlite",  # see db/groupcommit.py
        )
    return writer


def _answer(sent: list[sending.Sent]) -> dict[str, Any]:
    messages, errors = [], []
    for i, s in enumerate(sent):
        messages += [{"id": str(q), "to": p, "status": "queued", "label": s.label} for q, p in s.queued]
        messages += [{"id": None, "to": p, "status": "pending_moderation", "label": s.label} for p in s.pending]
        errors += [{"index": i, "to": p, "error": e} for p, e in s.refused]
    return {"messages": messages, "errors": errors}


async def _settle(request: Request, body: dict[str, Any], sync: list[bool], sent: list[sending.Sent], timeout: float):
    """Wait for the vendor's answer to the sync messages (holding no thread: ``api/waiting.py``);
    (status, body)."""
    ids = [q for s, want in zip(sent, sync, strict=True) if want for q, _p in s.queued]
    if not ids:
        return 202, body
    got = await waiting.submitted(request.app.state.api.engine, ids, timeout=timeout)
    late = []
    for m in body["messages"]:
        r = got.get(int(m["id"])) if m["id"] else None
        if r is None:
            continue
        if r["state"] in ("submitted", "done"):
            m["status"], m["vendor_message_id"] = "submitted", r["vendor_message_id"]
        elif r["state"] == "failed":
            m["status"], m["error"] = "failed", r["error"]
        else:
            late.append(m["id"])
    if late:
        return 504, {
            "type": "urn:cpaas:problem:sync-timeout",
            "title": "No vendor answer in time",
            "status": 504,
            "detail": f"{len(late)} message(s) have no submit result after {timeout:g} s; they stay queued and will be sent",
            **body,
        }
    if all(m["status"] == "failed" for m in body["messages"] if m["id"] in {str(i) for i in ids}):
        return 502, {
            "type": "urn:cpaas:problem:upstream",
            "title": "Vendor failure",
            "status": 502,
            "detail": "the vendor refused the message(s)",
            **body,
        }
    return 200, body


# The body of POST /v1/messages, validated here rather than by route parameters: the
# busiest route skips FastAPI's per-request dependency solving (a third of its cost);
# the OpenAPI document still describes the body, the header and the security scheme
# (``openapi_extra`` here, the schemas by ``schemas()`` in the app's document).
_BODY: TypeAdapter[MessageIn | BatchIn] = TypeAdapter(MessageIn | BatchIn)
_REF = "#/components/schemas/{model}"


def schemas() -> dict[str, Any]:
    """The component schemas the route's body refers to."""
    return _BODY.json_schema(ref_template=_REF, mode="validation").get("$defs", {})


_OPENAPI = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": idempotency.MAX_KEY, "title": "Idempotency-Key"},
            "description": "The same key and body within 24 h returns the first answer; another body is 409.",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {k: v for k, v in _BODY.json_schema(ref_template=_REF).items() if k != "$defs"}
            }
        },
    },
    "security": [{"HTTPBearer": []}],
}


async def _body(request: Request) -> MessageIn | BatchIn:
    raw = await request.body()
    try:
        return _BODY.validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=raw[:1000]) from None


@router.post(
    "/v1/messages",
    status_code=202,
    response_model=MessagesOut,
    summary="Send one message (or a batch): queued before the answer (async) or sent before it (sync)",
    responses={200: {"model": MessagesOut, "description": "sync: the vendor's answers"}},
    openapi_extra=_OPENAPI,
)
async def post_messages(request: Request):
    c = await authenticate(request, bearer_key(request))
    require(c, "campaign.send", c.company_id)
    body = await _body(request)
    items = body.messages if isinstance(body, BatchIn) else [body]
    idempotency_key = request.headers.get("idempotency-key")
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    digest = idempotency.body_hash(body.model_dump(by_alias=True)) if key else ""
    sync = [m.mode == "sync" for m in items]
    timeout = max((m.timeout or SYNC_TIMEOUT) for m in items)
    where = "messages[{}]: " if isinstance(body, BatchIn) else ""
    req = batch.Request(
        company_id=c.company_id,
        api_key_id=c.key_id,
        actor=c.principal.actor,
        messages=[_message(m, where.format(i)) for i, m in enumerate(items)],
        where=where,
        key=key,
        digest=digest,
    )
    done = await _writer(request).submit(req)  # answered once committed
    if done.replay is not None:
        return JSONResponse(done.replay[1], status_code=done.replay[0], headers={"Idempotent-Replayed": "true"})
    answer, status = done.answer, 202
    if any(sync):
        status, answer = await _settle(request, answer, sync, done.sent, timeout)
        if key is not None and status != 202:
            await run_in_threadpool(_keep_final, request, c, key, status, answer)
    media = "application/problem+json" if status >= 400 else "application/json"
    return JSONResponse(answer, status_code=status, media_type=media)


def _keep_final(request: Request, c: Caller, key: str, status: int, answer: dict) -> None:
    with session(request, c) as s:
        idempotency.update(s, api_key_id=c.key_id, key=key, status=status, response=answer)


def _time(text: str | None, field_: str):
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        problem = Problem(field_, f"not an ISO 8601 time: {text!r}")
        raise InvalidInput(str(problem), problems=[problem]) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("/v1/messages/{message_id}", summary="One message: status history, parts, cost")
def get_message(request: Request, c: CallerDep, message_id: str) -> dict:
    require(c, "campaign.view", c.company_id)
    with session(request, c) as s:
        company_id, message = views.get_message(s, message_id)
    visible(c, company_id, f"message {message_id!r}")
    return message


@router.get("/v1/messages", summary="The key's company's API messages, newest first (cursor pagination)")
def list_messages(
    request: Request,
    c: CallerDep,
    label: Annotated[str | None, Query(max_length=sending.MAX_LABEL)] = None,
    since: Annotated[str | None, Query(alias="from", max_length=40, description="ISO 8601; UTC if no offset")] = None,
    till: Annotated[str | None, Query(max_length=40, description="ISO 8601, exclusive")] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query()] = 100,
) -> dict:
    require(c, "campaign.view", c.company_id)
    with session(request, c) as s:
        rows, nxt = views.list_messages(
            s, company_id=c.company_id, label=label, since=_time(since, "from"), till=_time(till, "till"),
            status=status, cursor=cursor, limit=limit,
        )  # fmt: skip
    return {"messages": rows, "next_cursor": nxt}
