"""The acceptMO rules of an API send (SPEC CMP-18, CMP-24): a message may ask
for the handset's replies (MO callbacks, ``dispatch/mo_reply.py``) only when
the partner's MO messages mode is on (``tenant update --mo-messages``), and
never together with flash. Both refusals are HTTP 400 with the seed's text
(exit 4 on the command line); nothing is written."""

from __future__ import annotations

from sqlmodel import Session

from cpaas_cli.errors import InvalidInput, NotFound
from cpaas_cli.models.tenancy import Company

MO_OFF = "Partner's MO messages mode is off!"
MO_FLASH = "MO messages are not supported in FlashMessages!"


class MoRefused(InvalidInput):
    """acceptMO refused (HTTP 400; ``problem_type`` mo-off or mo-flash)."""

    def __init__(self, message: str, problem_type: str = "mo-off"):  # a default: copy.copy makes it from args
        super().__init__(message)
        self.problem_type = problem_type


def check_flash(*, flash: bool) -> None:
    """acceptMO with flash: refused whatever the partner's mode (the seed checks it first)."""
    if flash:
        raise MoRefused(MO_FLASH, "mo-flash")


def check(session: Session, company_id: int, *, flash: bool) -> None:
    """acceptMO for a message of ``company_id``: MoRefused unless allowed."""
    check_flash(flash=flash)
    company = session.get(Company, company_id)
    if company is None:
        raise NotFound(f"company #{company_id} not found")
    if not company.mo_messages:
        raise MoRefused(MO_OFF, "mo-off")
