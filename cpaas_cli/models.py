"""Every table model, imported so that the metadata is complete (Alembic, tests)."""

from cpaas_cli.agreements.models import Agreement, AgreementVersion
from cpaas_cli.audit.models import AuditLog
from cpaas_cli.billing.models import AgreementBalance, Charge, PackUsage, Payment, ScaleCounter
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
from cpaas_cli.dispatch.models import InboundMessage, VendorConnection
from cpaas_cli.edr.models import Edr, EdrExportTask
from cpaas_cli.identity.models import (
    ApiKey,
    AppUser,
    CompanySecurity,
    Department,
    IdentityGeneration,
    PasswordHistory,
    RecoveryCode,
    Role,
    UserRole,
    UserToken,
)
from cpaas_cli.invoices.models import Invoice, InvoiceCharge, InvoiceCounter, InvoiceLine
from cpaas_cli.recurring.models import FeeRule, FeeRun
from cpaas_cli.reports.models import SavedReport
from cpaas_cli.rerate.models import RerateTask, RerateUnit
from cpaas_cli.tenancy.models import Bank, BankAccount, Company, LegalEntity

__all__ = [
    "Agreement",
    "AgreementVersion",
    "AgreementBalance",
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
    "Charge",
    "Company",
    "Edr",
    "EdrExportTask",
    "EnabledService",
    "LegalEntity",
    "PackUsage",
    "Payment",
    "RateImport",
    "RateNode",
    "SavedReport",
    "ScaleCounter",
    "Service",
    "ServiceScope",
    "metadata",
    "VendorConnection",
    "Invoice",
    "InvoiceCharge",
    "InvoiceCounter",
    "InvoiceLine",
    "FeeRule",
    "FeeRun",
    "RerateTask",
    "RerateUnit",
    "InboundMessage",
    "ApiKey",
    "AppUser",
    "CompanySecurity",
    "Department",
    "IdentityGeneration",
    "PasswordHistory",
    "RecoveryCode",
    "Role",
    "UserRole",
    "UserToken",
]
