"""`cpaas role …`: system and custom roles, and which users hold them."""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli.cli.context import OutputOpt, emit, session
from cpaas_cli.identity import access, roles
from cpaas_cli.identity import users as user_svc

app = typer.Typer(no_args_is_help=True, help="Roles: system roles, custom roles, granting them to users.")

COLUMNS = ["id", "name", "side", "system", "users", "permissions"]
RoleArg = Annotated[str, typer.Argument(help="Role name or id.")]
SideOpt = Annotated[str | None, typer.Option("--side", help="backoffice or portal.")]


def _side(text: str | None) -> str | None:
    return roles.side_of(text) if text else None


@app.command("list")
def list_(ctx: typer.Context, side: SideOpt = None, output: OutputOpt = None) -> None:
    """List roles (system roles first)."""
    with session(ctx) as s:
        data = [roles.role_dict(s, r) for r in roles.list_roles(s, side=_side(side))]
    emit(ctx, data, output=output, columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, role: RoleArg, side: SideOpt = None, output: OutputOpt = None) -> None:
    """Show one role and its permissions."""
    with session(ctx) as s:
        data = roles.role_dict(s, roles.get(s, role, side=_side(side)))
    emit(ctx, data, output=output)


@app.command("areas")
def areas(ctx: typer.Context, output: OutputOpt = None) -> None:
    """The permission areas of each side."""
    emit(ctx, [{"side": k, "areas": list(v)} for k, v in roles.AREAS.items()], output=output)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Role name (≤ 40).")],
    side: Annotated[str, typer.Option("--side", help="backoffice or portal.")],
    permission: Annotated[
        list[str] | None, typer.Option("--permission", help="area=view|manage (repeat); '*' for no restrictions.")
    ] = None,
    template: Annotated[str | None, typer.Option(help="Start from this role's permissions.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = None,
) -> None:
    """Create a custom role."""
    with session(ctx) as s:
        row = roles.create(
            s,
            name=name,
            side=roles.side_of(side),
            permissions=permission or [],
            template=template,
            description=description,
        )
        data = roles.role_dict(s, row)
    emit(ctx, data, output=output)


@app.command("update")
def update(
    ctx: typer.Context,
    role: RoleArg,
    side: SideOpt = None,
    allow: Annotated[list[str] | None, typer.Option("--allow", help="area=view|manage (repeat).")] = None,
    deny: Annotated[list[str] | None, typer.Option("--deny", help="An area to remove (repeat).")] = None,
    output: OutputOpt = None,
) -> None:
    """Change a custom role's permissions (system roles are not editable)."""
    with session(ctx) as s:
        row = roles.change(s, roles.get(s, role, side=_side(side)), grant=allow or [], revoke=deny or [])
        access.bump(s)
        data = roles.role_dict(s, row)
    emit(ctx, data, output=output)


@app.command("grant")
def grant(
    ctx: typer.Context,
    role: RoleArg,
    user: Annotated[str, typer.Option("--user", help="User login or id.")],
    output: OutputOpt = None,
) -> None:
    """Give a user a role of its side."""
    with session(ctx) as s:
        u = user_svc.get(s, user)
        roles.assign(s, u, roles.for_user(s, role, u.kind))
        access.bump(s)
        data = user_svc.user_dict(s, u)
    emit(ctx, data, output=output)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    role: RoleArg,
    user: Annotated[str, typer.Option("--user", help="User login or id.")],
    output: OutputOpt = None,
) -> None:
    """Take a role from a user."""
    with session(ctx) as s:
        u = user_svc.get(s, user)
        roles.unassign(s, u, roles.get(s, role, side=u.kind))
        access.bump(s)
        data = user_svc.user_dict(s, u)
    emit(ctx, data, output=output)
