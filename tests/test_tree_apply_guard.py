"""`service tree apply` with a file that is empty or cut short refuses to
delete the rate tree (exit 4) unless --allow-empty; --dry-run shows the loss."""

from __future__ import annotations

import pytest

from tests.test_catalog import EXAMPLE1, sms_service

FULL = EXAMPLE1.read_text()


def _nodes(cli) -> int:
    return len(cli("service", "tree", "export", "SMS service").stdout.splitlines())


def _cut_after(text: str, marker: str) -> str:
    """The file cut at the end of the first line containing ``marker``."""
    lines = text.splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if marker in line)
    return "".join(lines[: n + 1])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("service: SMS service\nscope: 1\n", "no top-level 'tree' key"),
        ("tree:\n", "the file's tree is empty"),
        ("tree: {}\n", "the file's tree is empty"),
        (_cut_after(FULL, "children:"), "'children' has nothing after it"),
    ],
)
def test_an_empty_or_cut_file_is_refused(cli, tmp_path, text, reason):
    sms_service(cli)
    before = cli("service", "tree", "export", "SMS service").stdout
    f = tmp_path / "cut.yaml"
    f.write_text(text)
    run = cli("service", "tree", "apply", "SMS service", str(f), expect=4)
    assert reason in run.stderr and "--allow-empty" in run.stderr and "would remove" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    assert cli("service", "tree", "export", "SMS service").stdout == before


def test_dry_run_shows_what_would_go_and_allow_empty_applies(cli, tmp_path):
    sms_service(cli)
    f = tmp_path / "empty.yaml"
    f.write_text("tree:\n")
    d = cli.json("service", "tree", "apply", "SMS service", str(f), "--dry-run")
    assert d["changes"] and {c["op"] for c in d["changes"]} == {"remove"}
    assert "without --allow-empty the apply is refused" in d["refused"]
    assert _nodes(cli) > 3  # the dry run wrote nothing
    d = cli.json("service", "tree", "apply", "SMS service", str(f), "--allow-empty")
    assert d["changes"] and "refused" not in d
    assert cli.json("service", "tree", "show", "SMS service")["tree"] == {}
    # an empty file on an empty tree removes nothing: nothing to refuse
    cli.json("service", "tree", "apply", "SMS service", str(f))


def test_a_complete_file_still_applies(cli, tmp_path):
    sms_service(cli, tree=None)
    d = cli.json("service", "tree", "apply", "SMS service", str(EXAMPLE1))
    assert d["changes"] and "refused" not in d
