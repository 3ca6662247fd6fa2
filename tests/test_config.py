"""Settings precedence: flag, then environment, then config file, then default."""

from __future__ import annotations

from typer.testing import CliRunner

from cpaas_cli.cli.app import app
from cpaas_cli.config import DEFAULT_DB_URL, load_settings


def test_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "cpaas.toml"
    cfg.write_text('actor = "file-actor"\n[database]\nurl = "sqlite:///file.db"\n')
    monkeypatch.delenv("CPAAS_DATABASE_URL", raising=False)
    monkeypatch.delenv("CPAAS_ACTOR", raising=False)
    monkeypatch.delenv("CPAAS_CONFIG", raising=False)
    s = load_settings(config=str(cfg))
    assert (s.database_url, s.actor) == ("sqlite:///file.db", "file-actor")
    monkeypatch.setenv("CPAAS_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("CPAAS_ACTOR", "env-actor")
    s = load_settings(config=str(cfg))
    assert (s.database_url, s.actor) == ("sqlite:///env.db", "env-actor")
    s = load_settings(config=str(cfg), db="sqlite:///flag.db", actor="flag-actor")
    assert (s.database_url, s.actor) == ("sqlite:///flag.db", "flag-actor")
    monkeypatch.setenv("CPAAS_CONFIG", str(cfg))
    monkeypatch.delenv("CPAAS_DATABASE_URL")
    assert load_settings().database_url == "sqlite:///file.db"


def test_default_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CPAAS_DATABASE_URL", raising=False)
    monkeypatch.delenv("CPAAS_CONFIG", raising=False)
    assert load_settings().database_url == DEFAULT_DB_URL == "sqlite:///./cpaas.db"


def test_config_file_drives_the_cli(tmp_path, monkeypatch):
    db = tmp_path / "from-config.db"
    cfg = tmp_path / "my.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    monkeypatch.delenv("CPAAS_DATABASE_URL", raising=False)
    result = CliRunner().invoke(app, ["--config", str(cfg), "db", "upgrade", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert db.exists()


def test_missing_explicit_config_is_invalid_input(tmp_path):
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "nope.toml"), "tenant", "list"])
    assert result.exit_code == 4
    assert "does not exist" in result.stderr


def test_broken_config_is_invalid_input(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[database\n")
    result = CliRunner().invoke(app, ["--config", str(cfg), "tenant", "list"])
    assert result.exit_code == 4
