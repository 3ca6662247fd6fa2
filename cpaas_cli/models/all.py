"""Every table model, imported so that the metadata is complete (Alembic, the report sandbox, tests)."""

from cpaas_cli.db.base import metadata
from cpaas_cli.models.agreements import Agreement, AgreementVersion, ResellingAgreement
from cpaas_cli.models.audit import AuditLog
from cpaas_cli.models.billing import AgreementBalance, Charge, PackUsage, Payment, ScaleCounter
from cpaas_cli.models.callbacks import ApiKeyCallback, CallbackOutbox
from cpaas_cli.models.campaigns import Campaign, CampaignRecipient, MessageTemplate, OutboundMessage, SenderId
from cpaas_cli.models.catalog import EnabledService, RateImport, RateNode, Service, ServiceReseller, ServiceScope
from cpaas_cli.models.contacts import (
    Contact,
    ContactField,
    ContactGroup,
    ContactGroupMember,
    ContactImport,
    StopListEntry,
)
from cpaas_cli.models.dispatch import InboundMessage, VendorConnection
from cpaas_cli.models.edr import Edr, EdrExportTask, EdrLevel
from cpaas_cli.models.identity import (
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
from cpaas_cli.models.invoices import Invoice, InvoiceCharge, InvoiceCounter, InvoiceLine
from cpaas_cli.models.limits import RateBucket
from cpaas_cli.models.otp import OtpIntegration, OtpRequest
from cpaas_cli.models.otp_guard import OtpGuard, OtpGuardBlock
from cpaas_cli.models.recurring import FeeRule, FeeRun
from cpaas_cli.models.reports import SavedReport
from cpaas_cli.models.rerate import RerateTask, RerateUnit
from cpaas_cli.models.sending import ApiIdempotency
from cpaas_cli.models.tenancy import Bank, BankAccount, Company, LegalEntity

__all__ = [
    "ApiIdempotency",
    "RateBucket",
    "OtpIntegration",
    "OtpRequest",
    "OtpGuard",
    "OtpGuardBlock",
    "ApiKeyCallback",
    "CallbackOutbox",
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
    "EdrLevel",
    "ResellingAgreement",
    "ServiceReseller",
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
