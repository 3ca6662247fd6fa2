"""Contacts through the API: upsert one contact by phone, add stop-list blocks.
The routes call ``contacts.service``, ``contacts.groups`` and ``contacts.stoplist``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cpaas_cli.api.auth import CallerDep, require, session
from cpaas_cli.contacts import groups as contact_groups
from cpaas_cli.contacts import service as contacts
from cpaas_cli.contacts import stoplist
from cpaas_cli.contacts.values import phone as phone_number
from cpaas_cli.contacts.values import senders as sender_list
from cpaas_cli.errors import NotFound

router = APIRouter(tags=["contacts"])


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(default_factory=list, max_length=100, description="Needed to create; added on update.")
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    birthday: str | None = Field(None, max_length=20)
    gender: str | None = Field(None, max_length=20)
    comments: str | None = Field(None, max_length=2000)
    fields: dict[str, str] = Field(default_factory=dict, max_length=100, description="Custom fields by variable.")


class StopListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phones: list[str] = Field(min_length=1, max_length=1000, description="E.164 digits without '+'.")
    senders: list[str] = Field(["ALL"], min_length=1, max_length=100, description="Sender IDs, or ALL.")


@router.put("/v1/contacts/{phone}", summary="Create or update the contact with this phone (E.164 digits without '+')")
def put_contact(request: Request, c: CallerDep, phone: str, body: Annotated[ContactIn, Body()]):
    require(c, "contacts.edit", c.company_id)
    values = {k: getattr(body, k) for k in ("first_name", "last_name", "birthday", "gender", "comments")}
    number = phone_number("+" + phone if phone.isdigit() else phone)
    with session(request, c) as s:
        company = contacts.client_company(s, c.company_id)
        try:
            row = contacts.contact(s, company, "+" + number)
        except NotFound:
            row = contacts.create_contact(
                s, company, phone_text="+" + number, groups=body.groups, values=values, fields_in=body.fields
            )
            status = 201
        else:
            row = contacts.update_contact(s, row, values=values, fields_in=body.fields)
            for g in body.groups:
                contact_groups.add_members(s, contact_groups.group(s, company, g), phones=["+" + number])
            status = 200
        data = contacts.contact_dict(s, row)
    return JSONResponse(data, status_code=status)


@router.post("/v1/stoplist", summary="Block numbers for sender IDs (or ALL); existing blocks are kept")
def post_stoplist(request: Request, c: CallerDep, body: Annotated[StopListIn, Body()]) -> dict:
    require(c, "contacts.stoplist", c.company_id)
    phones = list(dict.fromkeys(phone_number("+" + p if p.isdigit() else p) for p in body.phones))
    with session(request, c) as s:
        company = contacts.client_company(s, c.company_id)
        added = stoplist.block(s, company, phones=phones, sender_list=sender_list(body.senders))
    return {"added": added}
