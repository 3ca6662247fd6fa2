"""A new campaign: a draft with its recipients, its text or template, and its variables.

Personalisation: the text is a sandboxed jinja2 template. The variables a
campaign can use are ``phone``, the contact columns (first_name, last_name,
birthday, gender, comments), the company's custom fields and the file
columns; a variable outside that set is refused when the campaign is
created (how a message is rendered: `rendering`). The recipients are
gathered by `recipients`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, select

from cpaas_cli import clock
from cpaas_cli.audit.service import record
from cpaas_cli.campaigns import holds, senders
from cpaas_cli.campaigns import templates as saved
from cpaas_cli.campaigns.recipients import FileSource, collect, insert_recipients, stop_set
from cpaas_cli.contacts.groups import group as group_by_ref
from cpaas_cli.contacts.service import client_company
from cpaas_cli.contacts.values import BASE_COLUMNS
from cpaas_cli.errors import InvalidInput, Problem, require
from cpaas_cli.messaging import templates as tpl
from cpaas_cli.models.agreements import Agreement
from cpaas_cli.models.campaigns import Campaign, MessageTemplate
from cpaas_cli.models.contacts import ContactField

_TEMPLATE_MARKS = ("{{", "{%", "{#")


def available_variables(session: Session, company_id: int, file_vars: Iterable[str]) -> set[str]:
    fields_ = session.exec(select(ContactField.variable).where(ContactField.company_id == company_id))
    return {"phone", *BASE_COLUMNS, *fields_, *file_vars}


def is_template(text: str) -> bool:
    return any(m in text for m in _TEMPLATE_MARKS)


def create(
    session: Session,
    *,
    company: str | int,
    sender: str | int,
    text: str | None = None,
    template: str | int | None = None,
    groups: Iterable[str] = (),
    files: Iterable[FileSource] = (),
    numbers: Iterable[str] = (),
    flash: bool = False,
    name: str | None = None,
    default_country: str | None = None,
) -> Campaign:
    """A draft campaign with its recipients (bulk-inserted)."""
    comp = client_company(session, company)
    holds.refuse_if_held(session, comp.id, "create")
    sid = senders.usable(session, sender, company_id=comp.id)  # exit 5 for a channel no gateway serves
    ag = session.get(Agreement, sid.agreement_id)
    assert ag is not None
    files = list(files)
    groups = list(groups)
    numbers = list(numbers)
    problems: list[Problem] = []
    if not (groups or files or numbers):
        problems.append(Problem("recipients", "give at least one --group, --file or --to"))
    if text is not None and template is not None:
        problems.append(Problem("text", "give --text or --template, not both"))
    if flash and sid.channel != "sms":
        problems.append(Problem("flash", "flash messages are SMS only"))
    tmpl: MessageTemplate | None = None
    if template is not None:
        tmpl = saved.get(session, template, company_id=comp.id)
        if tmpl.channel != sid.channel:
            problems.append(
                Problem("template", f"{tmpl.name!r} is a {tmpl.channel} template, the sender is {sid.channel}")
            )
        text = tmpl.text
    if text is not None and not text.strip():
        problems.append(Problem("text", "the message is empty"))
    require(problems)
    group_ids = [group_by_ref(session, comp, g).id for g in groups]
    stop = stop_set(session, comp.id, sid.sender)
    got, file_vars, has_text = collect(
        session, comp.id, groups=group_ids, files=files, numbers=numbers, default_country=default_country, stop=stop
    )
    if has_text and text is not None:
        raise InvalidInput(str(Problem("text", "the file has a text column (--map text=...); do not give --text too")))
    if not has_text and text is None:
        raise InvalidInput(str(Problem("text", "give --text, --template or a file text column (--map text=COL)")))
    if has_text and (groups or numbers):
        raise InvalidInput(
            str(Problem("text", "with a file text column every recipient needs its text: use files only"))
        )
    personalised = text is not None and is_template(text)
    used: list[str] = []
    if personalised:
        assert text is not None
        used = sorted(tpl.validate(text, available_variables(session, comp.id, file_vars)))
    now = clock.now()
    row = Campaign(
        company_id=comp.id,
        name=(name or f"Campaign {now:%Y-%m-%d %H:%M}").strip(),
        channel=sid.channel,
        sender_id=sid.id,
        agreement_id=ag.id,
        template_id=tmpl.id if tmpl else None,
        from_template=tmpl is not None,
        text=text,
        personalised=personalised,
        variables=used,
        flash=flash,
        currency=ag.currency,
        recipients=len(got.order),
        excluded_stop_list=got.stop_listed,
        excluded_invalid=got.invalid,
        excluded_duplicate=got.duplicate,
        sources={
            "groups": groups,
            "files": [{"path": f.path, "maps": f.maps} for f in files],
            "numbers": len(numbers),
            "default_country": default_country,
            "invalid_examples": got.invalid_examples,
        },
    )
    session.add(row)
    session.flush()
    insert_recipients(session, row.id, got.order)
    record(
        session,
        action="recipients",
        object_type="campaign",
        object_id=row.id,
        company_id=comp.id,
        new={
            "recipients": row.recipients,
            "stop_list": got.stop_listed,
            "invalid": got.invalid,
            "duplicate": got.duplicate,
        },
    )
    return row
