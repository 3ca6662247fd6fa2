"""`cpaas secrets …`: the key that encrypts stored passwords (see cpaas_cli/secretbox.py).

No command prints a key or a secret: `new-key` writes the key to a new file
readable by its owner only.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cpaas_cli import secretbox
from cpaas_cli.cli.context import OutputOpt, emit, say, session, state
from cpaas_cli.errors import InvalidInput

app = typer.Typer(
    no_args_is_help=True, help="Secrets at rest: make a key, check it, rotate stored secrets to a new one."
)


@app.command("new-key")
def new_key(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", help="New file for the key (mode 600; an existing file is refused).")],
    output: OutputOpt = None,
) -> None:
    """Write a fresh secret key to a new file (never to the screen)."""
    path = secretbox.write_new_key(out)
    say(ctx, f"wrote a new secret key to {path}; name it in [secrets] key_file, or use --secret-key-file")
    emit(ctx, {"key_file": str(path)}, output=output)


@app.command("check")
def check(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Check that the configured key opens every stored secret (exit 4 naming the first that it does not)."""
    from cpaas_cli.dispatch import stored_secrets

    keys = secretbox.load_keyring(state(ctx).settings)
    with session(ctx) as s:
        result = stored_secrets.check(s, keys)
    emit(ctx, result, output=output)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    new_key_file: Annotated[
        str | None,
        typer.Option(
            "--new-key-file",
            help="Encrypt every stored secret with the key in this file (the configured key still opens them "
            "for the move). Without it: with the first key of the configured source.",
        ),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Encrypt every stored secret again with a new key, all in one transaction."""
    from cpaas_cli.dispatch import stored_secrets

    current = secretbox.load_keyring(state(ctx).settings)
    new = secretbox.keyring_from_file(new_key_file) if new_key_file else current
    if new is None:
        raise InvalidInput(f"no secret key to rotate to: give --new-key-file FILE, or {secretbox.HINT}")
    with session(ctx) as s:
        result = stored_secrets.rotate(s, current, new)
    if new_key_file:
        say(ctx, f"re-encrypted {result['rotated']} secret(s); now name {new_key_file} as the secret key")
    emit(ctx, result, output=output)
