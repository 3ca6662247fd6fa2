"""Identities and access: users, roles, the permission check, passwords,
second factors, API keys and session tokens (SPEC USR-01..11, TEN-02, TEN-04)."""
