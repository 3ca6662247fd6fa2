"""The seed's ``/api/send_sms`` (SPEC CMP-24): its parameters, rules and answer.

POST takes one object or a list of objects; GET the same parameters in the
query. The answer is ``{"results": ["<number>: <message id>", ...]}`` with a
per-recipient error in place of the id (an invalid sender ID: ``For message:
can't validate sender <from>``, as the seed answers, with 200). Deviations
from the seed (README, "HTTP API"): a missing or empty ``message`` is 422 (the
seed's 500 is a bug), every other bad parameter is 422 too, and errors are
problem documents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cpaas_cli.api.auth import Caller, CallerDep, require, session
from cpaas_cli.errors import CpaasError, InvalidInput, Problem
from cpaas_cli.sending import mo
from cpaas_cli.sending import service as sending

router = APIRouter(tags=["messages"])

CHANNELS = {"sms": "sms", "viber": "viber"}


class SendSmsIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    channels: str | list[str] = Field(description="Viber, SMS (a list, or names separated by commas).")
    from_: str = Field(alias="from", max_length=32)
    to: str | list[str] = Field(description="E.164 digits without '+'; a list or separated by commas.")
    message: str = Field(max_length=sending.MAX_TEXT)
    label: str | None = Field(None, max_length=sending.MAX_LABEL)
    fallbackTtl: int | None = Field(None, ge=0)  # noqa: N815 - the seed's name
    isFlashed: bool = Field(False, alias="isFlashed")  # noqa: N815
    acceptMO: bool = False  # noqa: N815
    trafficType: Literal["TRANSACTION", "PROMOTION"] | None = None  # noqa: N815
    buttonActionUrl: str | None = Field(None, max_length=2000)  # noqa: N815
    imageUrl: str | None = Field(None, max_length=2000)  # noqa: N815
    buttonCaption: str | None = Field(None, max_length=100)  # noqa: N815


class SendSmsOut(BaseModel):
    results: list[str]


def _split(value: str | list[str]) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()]


def _channel(m: SendSmsIn) -> str:
    names = [n.lower() for n in _split(m.channels)]
    bad = [n for n in names if n not in CHANNELS]
    if not names or bad:
        problem = Problem("channels", "Viber and/or SMS")
        raise InvalidInput(str(problem), problems=[problem])
    if m.isFlashed and "sms" not in names:
        problem = Problem("isFlashed", "flash messages are SMS only")
        raise InvalidInput(str(problem), problems=[problem])
    channel = "sms" if "sms" in names else CHANNELS[names[0]]
    if channel == "sms":
        # Viber-only parameters (CMP-09, CMP-24): the message goes as SMS (Viber has no gateway
        # here), so they would change nothing; refused rather than silently dropped.
        for name in ("trafficType", "buttonActionUrl", "imageUrl", "buttonCaption", "fallbackTtl"):
            if getattr(m, name) is not None:
                problem = Problem(
                    name, "applies to Viber messages (and the Viber → SMS fallback); this one goes as SMS"
                )
                raise InvalidInput(str(problem), problems=[problem])
    return channel


def _one(s, c: Caller, m: SendSmsIn, left: int) -> tuple[list[str], int]:
    if m.acceptMO:  # before anything else, as the seed answers (400, its texts)
        mo.check(s, c.company_id, flash=m.isFlashed)
    text = sending.check_text(m.message, "message")
    label = sending.check_label(m.label)
    channel = _channel(m)
    numbers, refused = sending.recipients(_split(m.to), left)
    results = [f"{p}: {e}" for p, e in refused]
    try:
        sid = sending.sender_of(s, m.from_, company_id=c.company_id, channel=channel)
    except CpaasError:
        return results + [f"{p}: For message: can't validate sender {m.from_}" for p in numbers], len(numbers)
    sent = sending.send(
        s, company_id=c.company_id, sender=sid, numbers=numbers, text=text, label=label, flash=m.isFlashed,
        api_key_id=c.key_id, accept_mo=m.acceptMO,
    )  # fmt: skip
    results += [f"{p}: {q}" for q, p in sent.queued]
    results += [f"{p}: pending moderation" for p in sent.pending]
    results += [f"{p}: {e}" for p, e in sent.refused]
    return results, len(numbers)


def _send(request: Request, c: Caller, items: list[SendSmsIn]) -> dict[str, Any]:
    require(c, "campaign.send", c.company_id)
    results: list[str] = []
    left = sending.MAX_RECIPIENTS  # per request; beyond it numbers are not sent (the seed's rule)
    with session(request, c) as s:
        for m in items:
            got, used = _one(s, c, m, left)
            results += got
            left = max(0, left - used)
    return {"results": results}


@router.post(
    "/api/send_sms",
    response_model=SendSmsOut,
    summary="The seed's send API: one object or a list; at most 700 numbers per request",
)
def send_sms_post(request: Request, c: CallerDep, body: Annotated[SendSmsIn | list[SendSmsIn], Body()]):
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInput("body: at least one message")
    return JSONResponse(_send(request, c, items))


@router.get("/api/send_sms", response_model=SendSmsOut, summary="The seed's send API with query parameters")
def send_sms_get(request: Request, c: CallerDep, q: Annotated[SendSmsIn, Query()]):
    return JSONResponse(_send(request, c, [q]))
