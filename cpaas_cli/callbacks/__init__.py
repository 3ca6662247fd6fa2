"""Delivery and MO callbacks of messages sent through the API (SPEC CMP-25):
the outbox written beside each status change (``outbox``), the pure body,
signature and back-off rules (``signing``), the keys' callback settings and
the operator's list/retry (``service``), and the worker that posts (``sender``)."""
