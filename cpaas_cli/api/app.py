"""``create_app(settings)``: the FastAPI application of ``cpaas serve --http``.

Stateless: every request reads the database; the only cache (API keys, in
``identity.apikeys.Authenticator``) is invalidated across processes within a
second, so several ``serve`` processes on one PostgreSQL share the load.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from cpaas_cli import __version__
from cpaas_cli.api import bulk, campaigns, contacts, health, limits, messages, otp, problems, rates, reading, send_sms
from cpaas_cli.config import Settings

# Every router of the API, in the order of the OpenAPI document.
ROUTERS: tuple[Any, ...] = (
    health.router,
    messages.router,
    send_sms.router,
    reading.router,
    rates.router,
    campaigns.router,
    contacts.router,
    bulk.router,
    otp.router,
)


@dataclass
class ApiState:
    """What the routes share: the settings, the engine, the API-key checker."""

    settings: Settings
    _authenticator: Any = None
    _heads: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def engine(self):
        from cpaas_cli.db.engine import get_engine

        return get_engine(self.url, part="http")  # PostgreSQL: its own pool, cpaas-serve:http

    @property
    def authenticator(self):
        if self._authenticator is None:
            from cpaas_cli.identity import apikeys, keys

            self._authenticator = apikeys.Authenticator(self.engine, keys.load(self.settings))
        return self._authenticator

    def heads(self) -> list[str]:
        if self._heads is None:
            from cpaas_cli.db import migrate

            self._heads = sorted(migrate.heads(self.url))
        return self._heads

    def close(self) -> None:
        for item in self.extra.values():
            if hasattr(item, "close"):
                item.close()  # e.g. the send writer: what is queued is written first
        if self._authenticator is not None:
            self._authenticator.close()


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.api.close()  # the batched last-use times of the API keys

    app = FastAPI(
        lifespan=lifespan,
        title="cpaas HTTP API",
        version=__version__,
        description="Send messages, read their status, balance and rates, run campaigns. "
        "Authenticate with `Authorization: Bearer <API key>` (`cpaas apikey create`). "
        "Errors are RFC 9457 problem documents with stable `type` URIs (`urn:cpaas:problem:<name>`).",
    )
    app.state.api = ApiState(settings)
    problems.install(app)
    limits.install(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    _document_extra_schemas(app)
    return app


def _document_extra_schemas(app: FastAPI) -> None:
    """Add the schemas of bodies a route validates itself (``messages.schemas()``) to the document."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = plain()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(messages.schemas())
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
