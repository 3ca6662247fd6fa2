"""Recurring and one-time fees (sender ID setup and usage fees) charged on a schedule."""
