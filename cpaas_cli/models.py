"""Every table model, imported so that the metadata is complete (Alembic, tests)."""

from cpaas_cli.agreements.models import Agreement, AgreementVersion
from cpaas_cli.audit.models import AuditLog
from cpaas_cli.campaigns.models import Campaign, CampaignRecipient, MessageTemplate, OutboundMessage, SenderId
from cpaas_cli.catalog.models import EnabledService, RateImport, RateNode, Service, ServiceScope
from cpaas_cli.contacts.models import (
    Contact,
    ContactField,
    ContactGroup,
    ContactGroupMember,
    ContactImport,
    StopListEntry,
)
from cpaas_cli.db.base import metadata
from cpaas_cli.dispatch.models import VendorConnection
from cpaas_cli.tenancy.models import Bank, BankAccount, Company, LegalEntity

__all__ = [
    "Agreement",
    "AgreementVersion",
    "AuditLog",
    "Bank",
    "Campaign",
    "CampaignRecipient",
    "MessageTemplate",
    "OutboundMessage",
    "SenderId",
    "Contact",
    "ContactField",
    "ContactGroup",
    "ContactGroupMember",
    "ContactImport",
    "StopListEntry",
    "BankAccount",
    "Company",
    "EnabledService",
    "LegalEntity",
    "RateImport",
    "RateNode",
    "Service",
    "ServiceScope",
    "metadata",
    "VendorConnection",
]
