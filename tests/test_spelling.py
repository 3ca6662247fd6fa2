"""One spelling per idea across every command group (issue 25, item 7).

The whole command tree is walked against the table "One spelling per idea" of
the README: a visible option spelled as another spelling of a listed idea fails,
unless the same words mean something else on that command (listed, with why).
A short flag means one long option everywhere, and a long option has one short
flag. The old spellings (``cli/aliases.py``) still work, hidden, with one
warning line on stderr, and stdout stays clean JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cpaas_cli.cli.aliases import OPTION_ALIASES
from cpaas_cli.cli.app import ENTRIES, load
from tests.helpers import client, owner_le, reseller
from tests.test_campaigns import setup as campaign_setup
from tests.test_money_cli import setup as money_setup

README = Path(__file__).parent.parent / "README.md"


@dataclass(frozen=True)
class Idea:
    what: str
    spelling: str  # the long option, as the README table writes it
    others: frozenset[str]  # other long spellings of the same idea: never visible
    # (command, option) where one of ``others`` means another idea → why
    elsewhere: dict[tuple[str, str], str] = field(default_factory=dict)


IDEAS = [
    Idea(
        "a file the command writes",
        "--out",
        frozenset({"--file", "--output-file", "--out-file", "--outfile", "--to-file", "--dest", "--target"}),
        {("campaign create", "--file"): "the recipients file it reads"},
    ),
    Idea(
        "the format of the data on stdout",
        "--output",
        frozenset({"--json", "--yaml", "--csv", "--as-json", "--output-format", "--print"}),
    ),
    Idea(
        "a time window",
        "--from",
        frozenset(
            {
                "--since",
                "--until",
                "--after",
                "--before",
                "--start",
                "--end",
                "--to",
                "--from-date",
                "--till-date",
                "--date-from",
                "--date-to",
                "--start-time",
                "--end-time",
                "--start-date",
                "--end-date",
                "--from-time",
            }
        ),
        {("campaign create", "--to"): "the recipients' numbers"},
    ),  # fmt: skip
    Idea(
        "the moment a command looks at",
        "--at",
        frozenset({"--active-at", "--as-at", "--valid-at", "--effective-at", "--in-force-at", "--on", "--when"}),
    ),
    Idea("a run as if it were now T", "--as-of", frozenset({"--now", "--as-at", "--asof"})),
    Idea(
        "the zone of typed times",
        "--tz",
        frozenset({"--timezone", "--time-zone", "--zone"}),
        {
            ("user create", "--timezone"): "the user's own zone, a field of the user",
            ("user update", "--timezone"): "the user's own zone, a field of the user",
        },
    ),
    Idea(
        "the country of numbers written without a country code",
        "--default-country",
        frozenset({"--country", "--cc", "--default-cc", "--national-country", "--phone-country"}),
        {
            ("tenant legal-entity add", "--country"): "the country of registration",
            ("tenant legal-entity update", "--country"): "the country of registration",
            ("tenant bank add", "--country"): "the bank's country",
            ("user create", "--country"): "the user's country, a field of the user",
            ("user update", "--country"): "the user's country, a field of the user",
            ("edr export", "--country"): "a filter on the destination country",
        },
    ),
    Idea(
        "a company, by name or id",
        "--company",
        frozenset(
            {
                "--owner",
                "--tenant",
                "--customer",
                "--client",
                "--org",
                "--organisation",
                "--organization",
                "--company-id",
            }
        ),
        {("init", "--owner"): "the name of the system owner it creates"},
    ),  # fmt: skip
    Idea(
        "only reports offered to clients",
        "--client-visible",
        frozenset({"--client", "--visible", "--for-clients", "--public"}),
    ),
    Idea("the header row of a sheet", "--header-row", frozenset({"--start-row", "--skip-rows", "--header-line"})),
    Idea("how file columns map to fields", "--map", frozenset({"--mapping", "--column-map", "--columns-map"})),
    Idea("a sender ID", "--sender", frozenset({"--sender-id", "--originator", "--from-sender"})),
    Idea("a contact group", "--group", frozenset({"--contact-group", "--groups"})),
    Idea(
        "confirm a destructive verb off a terminal",
        "--yes",
        frozenset({"--assume-yes", "--force-yes", "--confirm", "--no-prompt", "--no-input", "--non-interactive"}),
    ),
    Idea("at most N rows of a list", "--limit", frozenset({"--max", "--max-rows", "--top", "--head", "--first"})),
    Idea(
        "show what would change, write nothing",
        "--dry-run",
        frozenset({"--preview", "--simulate", "--what-if", "--plan", "--noop", "--no-op"}),
    ),
    Idea("replace an existing output file", "--force", frozenset({"--overwrite", "--clobber", "--replace-file"})),
]


def _commands(cmd, path: str):
    subs = getattr(cmd, "commands", None)
    if subs is None:
        yield path, cmd
        return
    for name, sub in subs.items():
        if not sub.hidden:
            yield from _commands(sub, f"{path} {name}")


def _visible_options() -> list[tuple[str, object]]:
    found = []
    for name in ENTRIES:
        for path, cmd in _commands(load(name), name):
            found += [(path, p) for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    return found


def _longs(param) -> list[str]:
    return [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]


def _shorts(param) -> tuple[str, ...]:
    return tuple(sorted(o for o in (*param.opts, *param.secondary_opts) if not o.startswith("--")))


def test_the_walk_sees_the_whole_tree():
    """The control: the walk reaches every group's commands and their options."""
    found = _visible_options()
    paths = {p for p, _ in found}
    assert len(paths) > 150 and {"tenant bank list", "service tree export", "edr export-task list"} <= paths
    assert ("audit list", "--from") in {(p, o) for p, opt in found for o in _longs(opt)}


def test_no_visible_option_spells_a_listed_idea_another_way():
    offenders = []
    for path, param in _visible_options():
        for opt in _longs(param):
            for idea in IDEAS:
                if opt in idea.others and (path, opt) not in idea.elsewhere:
                    offenders.append(f"{path} {opt}: {idea.what} is spelled {idea.spelling}")
    assert offenders == []


def test_the_exceptions_are_still_there():
    """Each "same words, another idea" entry names an option that exists (the list cannot rot)."""
    seen = {(p, o) for p, param in _visible_options() for o in _longs(param)}
    stale = [key for idea in IDEAS for key in idea.elsewhere if key not in seen]
    assert stale == []


def test_a_short_flag_means_one_long_option_and_back():
    short_to_long: dict[str, set[tuple[str, ...]]] = {}
    long_to_short: dict[str, set[tuple[str, ...]]] = {}
    for _path, param in _visible_options():
        longs, shorts = tuple(_longs(param)), _shorts(param)
        for s in shorts:
            short_to_long.setdefault(s, set()).add(longs)
        for opt in longs:
            long_to_short.setdefault(opt, set()).add(shorts)
    assert {s: ls for s, ls in short_to_long.items() if len(ls) > 1} == {}
    assert {opt: ss for opt, ss in long_to_short.items() if len(ss) > 1} == {}
    assert short_to_long["-y"] == {("--yes",)} and long_to_short["--company"] == {("-c",)}


def _readme_table() -> list[list[str]]:
    text = README.read_text()
    section = text.split("### One spelling per idea", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_readme_table_lists_every_idea_and_every_old_spelling():
    table = _readme_table()
    spellings = {opt for _, spelling, _ in table for opt in re.findall(r"--[a-z-]+", spelling)}
    assert {idea.spelling for idea in IDEAS} <= spellings
    old_column = " ".join(old for _, _, old in table)
    for path, olds in OPTION_ALIASES.items():
        for old in olds:
            assert f"`{path}`" in old_column and all(o in old_column for o in old.opts), (path, old)


def test_every_old_spelling_is_hidden_and_stands_for_a_visible_option():
    visible = {(p, o) for p, param in _visible_options() for o in (*param.opts, *param.secondary_opts)}
    for path, olds in OPTION_ALIASES.items():
        group, *rest = path.split()
        cmd = load(group)
        for name in rest:
            cmd = cmd.commands[name]
        hidden = {o for p in cmd.params if p.hidden for o in p.opts}
        for old in olds:
            assert set(old.opts) <= hidden, (path, old)
            assert not any((path, o) in visible for o in old.opts), (path, old)
            assert (path, old.new) in visible, (path, old)
            longs = [o for o in old.opts if o.startswith("--")]
            assert any(set(longs) <= idea.others for idea in IDEAS), f"{path} {longs}: not in an idea's spellings"


def test_help_does_not_show_an_old_spelling(cli):
    text = cli("service", "tree", "export", "--help").stdout
    assert "--out" in text and "-o, --output" in text
    assert "--file" not in text and "--json" not in text and "-f," not in text
    text = cli("audit", "list", "--help").stdout
    assert "--from" in text and "--since" not in text and "--until" not in text


# ---------------------------------------------------------------- the old spellings still work


def _warning(path: str, old: str, new: str) -> str:
    return f"warning: `{path} {old}` is deprecated and will be removed; use `{new}`"


def _without(data, volatile):
    if isinstance(data, list):
        return [_without(d, volatile) for d in data]
    return {k: v for k, v in data.items() if k not in volatile}


def _same_run(cli, old_args, new_args, path, old, new, volatile=()):
    """The old spelling gives what the new one gives (stdout, clean JSON), and one
    warning line on stderr before the command's own messages."""
    before = cli(*new_args, "-o", "json")
    after = cli(*old_args, "-o", "json")
    assert _without(json.loads(after.stdout), volatile) == _without(json.loads(before.stdout), volatile)
    assert after.stderr.splitlines() == [_warning(path, old, new), *before.stderr.splitlines()]
    assert "deprecated" not in before.stderr
    return after


def test_audit_list_since_and_until(cli):
    owner_le(cli)
    client(cli)
    rows = cli.json("audit", "list", "--from", "2000-01-01", "--till", "2100-01-01")
    assert len(rows) >= 4
    _same_run(cli, ("audit", "list", "--since", "2000-01-01"), ("audit", "list", "--from", "2000-01-01"),
              "audit list", "--since", "--from")  # fmt: skip
    _same_run(cli, ("audit", "list", "--until", "2000-01-01"), ("audit", "list", "--till", "2000-01-01"),
              "audit list", "--until", "--till")  # fmt: skip
    # the value reaches the filter: nothing after 2100, nothing before 2000
    assert cli.json("audit", "list", "--since=2100-01-01") == []
    assert cli.json("audit", "list", "--until", "2000-01-01") == []
    # --quiet silences the warning as any message; a bad value names the new option
    assert cli("-q", "audit", "list", "--since", "2000-01-01", "-o", "json").stderr == ""
    bad = cli("audit", "list", "--since", "yesterday-ish", expect=4)
    assert "error: --from:" in bad.stderr


def test_the_old_and_the_new_spelling_together_is_a_usage_error(cli):
    run = cli("audit", "list", "--since", "2000-01-01", "--from", "2001-01-01", "-o", "json", expect=2)
    assert run.stdout == ""
    assert run.stderr.strip() == "error: --since is the old spelling of --from: give one of them"


def test_a_mistyped_option_is_offered_the_new_spelling(cli):
    run = cli("audit", "list", "--sinc", "2000-01-01", expect=2)
    assert "(Possible options: --from)" in run.stderr and "--since" not in run.stderr.replace("--sinc ", "")


def test_invoice_list_since(cli):
    money_setup(cli)
    _same_run(cli, ("invoice", "list", "--since", "2026-01-01"), ("invoice", "list", "--from", "2026-01-01"),
              "invoice list", "--since", "--from")  # fmt: skip


def test_agreement_list_active_at(cli):
    money_setup(cli)
    run = _same_run(cli, ("agreement", "list", "--active-at", "2026-03-01"), ("agreement", "list", "--at", "2026-03-01"),
                    "agreement list", "--active-at", "--at", volatile={"at"})  # fmt: skip
    assert [a["code"] for a in run.json] == ["AG-1"]
    assert cli.json("agreement", "list", "--active-at", "2025-03-01") == []


def test_tenant_bank_owner(cli):
    owner_le(cli)
    reseller(cli, "R1")
    old = cli(
        "tenant", "bank", "add", "R Bank", "--owner", "R1", "--country", "GB", "--address", "London", "-o", "json"
    )
    assert old.json["owner"] == "R1"
    assert old.stderr.splitlines() == [_warning("tenant bank add", "--owner", "--company")]
    new = cli.json(
        "tenant", "bank", "add", "Hub Bank", "--company", "System owner", "--country", "ES", "--address", "Madrid"
    )
    assert new["owner"] == "System owner"
    run = _same_run(cli, ("tenant", "bank", "list", "--owner", "R1"), ("tenant", "bank", "list", "--company", "R1"),
                    "tenant bank list", "--owner", "--company")  # fmt: skip
    assert [b["name"] for b in run.json] == ["R Bank"]


def test_campaign_create_country(cli):
    campaign_setup(cli)
    base = ("campaign", "create", "--company", "Client A", "--sender", "ACME", "--to", "620111222", "--text", "hi")
    old = cli(*base, "--country", "ES", "-o", "json")
    new = cli(*base, "--default-country", "ES", "-o", "json")
    assert old.stderr.splitlines()[0] == _warning("campaign create", "--country", "--default-country")
    assert old.stderr.splitlines()[1:] == [line.replace("#2", "#1") for line in new.stderr.splitlines()]
    drop = ("id", "name", "created_at", "updated_at")
    assert {k: v for k, v in old.json.items() if k not in drop} == {k: v for k, v in new.json.items() if k not in drop}
    # the country reached the campaign: the national number is Spanish (without one, +62… Indonesia)
    countries = cli.json("campaign", "estimate", str(old.json["id"]))["countries"]
    assert [c["country"] for c in countries] == ["ES"]
    plain = cli.json(*base)
    assert [c["country"] for c in cli.json("campaign", "estimate", str(plain["id"]))["countries"]] == ["ID"]


def test_tree_and_rates_export_file_and_json(cli, tmp_path):
    money_setup(cli)
    cli("service", "tree", "export", "SMS service", "--out", str(tmp_path / "new.yaml"))
    expected = (tmp_path / "new.yaml").read_text()
    assert "SMS service" in expected
    for i, old in enumerate((["--file", "{}"], ["-f", "{}"], ["--file={}"], ["-f{}"])):
        target = tmp_path / f"old{i}.yaml"
        run = cli("service", "tree", "export", "SMS service", *[a.format(target) for a in old])
        assert target.read_text() == expected and run.stdout == ""
        # the warning names the long old spelling, whichever form was typed
        assert _warning("service tree export", "--file", "--out") in run.stderr.splitlines()
    as_json = cli("service", "tree", "export", "SMS service", "-o", "json")
    assert json.loads(as_json.stdout)["service"] == "SMS service"
    old = cli("service", "tree", "export", "SMS service", "--json")
    assert json.loads(old.stdout) == json.loads(as_json.stdout)
    assert old.stderr.splitlines() == [_warning("service tree export", "--json", "-o json")]
    assert cli("-o", "json", "service", "tree", "export", "SMS service").stdout == as_json.stdout
    assert cli("service", "tree", "export", "SMS service").stdout == expected  # YAML by default

    cli("rates", "export", "--agreement", "AG-1", "--at", "2026-06-01", "--out", str(tmp_path / "new.csv"))
    run = cli("rates", "export", "--agreement", "AG-1", "--at", "2026-06-01", "-f", str(tmp_path / "old.csv"))
    assert (tmp_path / "old.csv").read_text() == (tmp_path / "new.csv").read_text()
    assert run.stderr.splitlines()[0] == _warning("rates export", "--file", "--out")


def test_report_list_client(cli, report_role, tmp_path):
    sql = tmp_path / "r.sql"
    sql.write_text("SELECT 1 AS one")
    cli.json("report", "define", "ours", "--sql", str(sql), "--internal")
    cli.json("report", "define", "theirs", "--sql", str(sql), "--client-visible")
    run = _same_run(cli, ("report", "list", "--client"), ("report", "list", "--client-visible"),
                    "report list", "--client", "--client-visible")  # fmt: skip
    assert [r["name"] for r in run.json] == ["theirs"]
    assert [r["name"] for r in cli.json("report", "list", "--internal")] == ["ours"]
