"""The ASGI application of ``cpaas serve --http`` (FastAPI): thin like cli/.

Each route parses, authenticates (``auth.py``: Bearer API key), calls
``identity.access.require`` and the same domain services the commands call,
and maps the project's errors to RFC 9457 problem documents (``problems.py``).
"""
