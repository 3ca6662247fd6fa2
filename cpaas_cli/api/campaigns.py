"""Campaigns through the API: create from groups (now or scheduled), the lifecycle
actions, and reading one. Each route calls ``campaigns.drafts`` / ``lifecycle`` /
``views`` as ``cpaas campaign`` does."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cpaas_cli.api.auth import Caller, CallerDep, require, session
from cpaas_cli.campaigns import drafts, lifecycle, views
from cpaas_cli.campaigns.materialise import StartOutcome
from cpaas_cli.errors import InsufficientCredit, NotFound
from cpaas_cli.models.campaigns import Campaign

router = APIRouter(tags=["campaigns"])


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: str = Field(max_length=40, description="Local start time, e.g. 2026-12-01 09:00.")
    tz: str = Field("UTC", max_length=64, description="IANA time zone of `at`.")


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=32)
    text: str = Field(max_length=10_000, description="The message; {{ variables }} personalise it.")
    groups: list[str] = Field(min_length=1, max_length=100)
    name: str | None = Field(None, max_length=200)
    flash: bool = False
    schedule: ScheduleIn | None = None
    start: bool = Field(True, description="Without a schedule: start now (false: keep a draft).")


def _campaign(s, c: Caller, campaign_id: int, permission: str) -> Campaign:
    row = s.get(Campaign, campaign_id)
    if row is None or not c.principal.sees(row.company_id):
        raise NotFound(f"campaign #{campaign_id} not found")
    require(c, permission, row.company_id, session=s)
    return row


def _answer(s, row: Campaign, outcome: StartOutcome | None, status: int = 200):
    data = views.campaign_dict(s, row, views.progress(s, [row.id]).get(row.id))
    credit_failed = outcome is not None and row.state == "failed" and outcome.estimate and not outcome.estimate.fits
    return data, (402 if credit_failed else status), outcome


def _respond(data: dict, status: int, outcome: StartOutcome | None):
    if status == 402:
        exc = InsufficientCredit(f"campaign #{data['id']} failed: {outcome.reason if outcome else ''}")
        exc.problem_fields = {"campaign": data}  # type: ignore[attr-defined]
        raise exc
    return JSONResponse(data, status_code=status)


@router.post(
    "/v1/campaigns",
    status_code=201,
    summary="Create a campaign from contact groups: start now, schedule, or keep a draft",
)
def create_campaign(request: Request, c: CallerDep, body: Annotated[CampaignIn, Body()]):
    require(c, "campaign.create", c.company_id)
    with session(request, c) as s:
        row = drafts.create(
            s, company=c.company_id, sender=body.from_, text=body.text, groups=body.groups, flash=body.flash,
            name=body.name,
        )  # fmt: skip
        outcome = None
        if body.schedule is not None:
            lifecycle.schedule(s, row, at=body.schedule.at, tz=body.schedule.tz)
        elif body.start:
            outcome = lifecycle.send(s, row)
        data, status, outcome = _answer(s, row, outcome, 201)
    return _respond(data, status, outcome)


@router.get("/v1/campaigns/{campaign_id}", summary="One campaign with its progress")
def get_campaign(request: Request, c: CallerDep, campaign_id: int):
    with session(request, c) as s:
        row = _campaign(s, c, campaign_id, "campaign.show")
        data, _status, _o = _answer(s, row, None)
    return data


@router.post("/v1/campaigns/{campaign_id}/{action}", summary="start (a scheduled one now), pause, resume, cancel")
def campaign_action(
    request: Request, c: CallerDep, campaign_id: int, action: Literal["start", "pause", "resume", "cancel"]
):
    with session(request, c) as s:
        row = _campaign(s, c, campaign_id, f"campaign.{action}")
        got = getattr(lifecycle, action)(s, row)
        outcome = got if isinstance(got, StartOutcome) else None
        data, status, outcome = _answer(s, row, outcome)
    return _respond(data, status, outcome)
