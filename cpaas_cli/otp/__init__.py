"""OTP / 2FA verification (SPEC OTP-01..06): integrations, codes, requests."""
