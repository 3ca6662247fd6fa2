"""Authentication of API requests: ``Authorization: Bearer <API key>``.

The key is checked by ``identity.apikeys.Authenticator`` (an in-process cache
that sees another process's revoke within a second); the result is a
:class:`Caller` (the key's user as an ``identity.access.Principal``, the key's
id). Every route then calls :func:`require` (the one permission check,
``identity.access.require``) with the company of the object it acts on. An
object outside the key's tenant scope is 404 (:func:`visible`), not 403.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from cpaas_cli.api.problems import Unauthenticated
from cpaas_cli.db.engine import make_session
from cpaas_cli.errors import Denied, NotFound
from cpaas_cli.identity import access
from cpaas_cli.identity.access import Principal

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cpk_…`")


@dataclass(frozen=True)
class Caller:
    principal: Principal
    key_id: int
    ip: str | None

    @property
    def company_id(self) -> int:
        return self.principal.company_id

    def pick(self, backoffice: str, portal: str) -> str:
        """The permission of this side (BackOffice and portal users have different areas)."""
        return backoffice if self.principal.kind == "backoffice" else portal


async def authenticate(request: Request, key: str | None) -> Caller:
    """The caller of ``key`` (Unauthenticated when it is missing or refused). A key already
    in the cache is checked in the event loop (no I/O); one that needs the database is
    checked in a worker thread."""
    ip = request.client.host if request.client else None
    if not key:
        raise Unauthenticated("an API key is required: Authorization: Bearer <API key>")
    auth = request.app.state.api.authenticator
    try:
        if auth.cached(key):
            principal, key_id = auth.identify(key, ip=ip)
        else:
            principal, key_id = await run_in_threadpool(auth.identify, key, ip=ip)
    except Denied as exc:
        raise Unauthenticated(exc.message) from None
    request.state.key_prefix = key[4:12]
    return Caller(principal, key_id, ip)


def bearer_key(request: Request) -> str | None:
    """The credentials of ``Authorization: Bearer …`` (as ``HTTPBearer`` reads them), or None."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    """The route dependency: the caller of the request's API key."""
    ok = credentials is not None and credentials.scheme.lower() == "bearer"
    return await authenticate(request, credentials.credentials if ok else None)  # type: ignore[union-attr]


CallerDep = Annotated[Caller, Depends(caller)]


def require(c: Caller, permission: str, company_id: int | None, *, session: Session | None = None) -> None:
    """The one permission check (Denied → 403), audited when refused."""
    access.require(c.principal, permission, company_id, session=session, ip=c.ip)


def visible(c: Caller, company_id: int | None, what: str) -> None:
    """NotFound (404) for an object of a company outside the key's scope."""
    if not c.principal.sees(company_id):
        raise NotFound(f"{what} not found")


@contextmanager
def session(request: Request, c: Caller) -> Iterator[Session]:
    """The request owns the transaction: commit on success, roll back on any error."""
    s = make_session(
        request.app.state.api.engine, actor=c.principal.actor, command=f"api {request.method} {request.url.path}"[:200]
    )
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()
