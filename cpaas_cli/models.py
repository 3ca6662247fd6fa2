"""Every table model, imported so that the metadata is complete (Alembic, tests)."""

from cpaas_cli.agreements.models import Agreement, AgreementVersion
from cpaas_cli.audit.models import AuditLog
from cpaas_cli.db.base import metadata
from cpaas_cli.dispatch.models import VendorConnection
from cpaas_cli.tenancy.models import Bank, BankAccount, Company, LegalEntity

__all__ = [
    "Agreement",
    "AgreementVersion",
    "AuditLog",
    "Bank",
    "BankAccount",
    "Company",
    "LegalEntity",
    "metadata",
    "VendorConnection",
]
