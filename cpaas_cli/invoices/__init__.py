"""Invoices: one per agreement and closed billing period, built from charges."""
