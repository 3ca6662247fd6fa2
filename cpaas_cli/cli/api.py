"""`cpaas api`: the HTTP API of `serve --http` (its OpenAPI document)."""

from __future__ import annotations

import json

import typer

from cpaas_cli.cli.context import state

app = typer.Typer(no_args_is_help=True)


def openapi_document(settings) -> dict:
    from cpaas_cli.api.app import create_app

    return create_app(settings).openapi()


@app.command("openapi")
def openapi(ctx: typer.Context) -> None:
    """The HTTP API of `serve --http`: its OpenAPI document.

    Prints the OpenAPI document (JSON) that `serve --http` serves at /openapi.json:
    `cpaas api openapi > openapi.json`.
    """
    typer.echo(json.dumps(openapi_document(state(ctx).settings), indent=2, ensure_ascii=False))
