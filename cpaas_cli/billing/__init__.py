"""Billing: periods, balances, payments, fees and invoices."""
