from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.cli.main import app
from opsmind.config import ConfigError, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "opsmind.yaml"


def test_defaults_are_valid() -> None:
    s = load_settings()
    assert s.api.port == 8080 and s.storage.backend == "sqlite"


def test_example_config_is_valid() -> None:
    s = load_settings(EXAMPLE)
    assert s.scrape and s.notify.webhooks


def test_errors_name_the_key_and_why(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("storage:\n  raw_retention_s: -5\n  pathh: x\napi:\n  port: 70000\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    text = str(err.value)
    assert "storage.raw_retention_s: Input should be greater than 0" in text
    assert "storage.pathh: unknown key" in text
    assert "api.port" in text


def test_cross_field_rules(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("storage: {raw_retention_s: 100, minute_retention_s: 50}\n")
    with pytest.raises(ConfigError, match="retention must grow with resolution"):
        load_settings(f)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("storage: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(f)
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("api: {host: 0.0.0.0, port: 9000}\n")
    monkeypatch.setenv("OPSMIND_API__PORT", "9100")
    s = load_settings(f)
    assert (s.api.host, s.api.port) == ("0.0.0.0", 9100)
    monkeypatch.setenv("OPSMIND_API__PORT", "not-a-port")
    with pytest.raises(ConfigError, match="api.port"):
        load_settings(f)


def test_cli_config_check(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["config", "check", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("bus: {overflow: sometimes}\n")
    res = runner.invoke(app, ["config", "check", str(bad)])
    assert res.exit_code == 2
    assert "bus.overflow" in res.output


def test_run_refuses_a_port_in_use_with_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"api: {{port: {port}}}\nstorage: {{path: {tmp_path / 'x.db'}}}\n")
        res = CliRunner().invoke(app, ["run", "-c", str(cfg)])
    assert res.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(res.output.split())


def test_availability_objectives_per_service() -> None:
    s = load_settings(
        predict={"error_objective": 0.99, "error_objective_overrides": {"model-training": 0.95}}
    )
    assert s.predict.error_objective_for("model-training") == 0.95
    assert s.predict.error_objective_for("gateway") == 0.99
    with pytest.raises(ConfigError, match=r"error_objective_overrides.*between 0 and 1.*'gateway': 1\.0"):
        load_settings(predict={"error_objective_overrides": {"gateway": 1.0}})


def test_shared_backends_are_checked(tmp_path: Path) -> None:
    s = load_settings(
        storage={"backend": "postgres", "dsn": "postgresql://x@db/ops"}, bus={"backend": "redis"}
    )
    assert (s.storage.pg_schema, s.bus.redis_url) == ("opsmind", "redis://127.0.0.1:6379/0")
    with pytest.raises(ConfigError, match="storage.backend postgres needs storage.dsn"):
        load_settings(storage={"backend": "postgres"})
    with pytest.raises(ConfigError, match="storage.pg_schema"):
        load_settings(storage={"backend": "postgres", "dsn": "postgresql://x@db/ops", "pg_schema": "a; drop"})
    with pytest.raises(ConfigError, match="bus.redis_url"):
        load_settings(bus={"backend": "redis", "redis_url": "127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="storage.backend"):
        load_settings(storage={"backend": "mysql"})


def test_config_check_reaches_the_servers_without_changing_them(tmp_path: Path) -> None:
    """A PostgreSQL or Redis that cannot be reached is named by ``config check`` (port 1: nothing listens)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("storage: {backend: postgres, dsn: 'postgresql://postgres@127.0.0.1:1/test'}\n")
    res = CliRunner().invoke(app, ["config", "check", str(cfg)])
    assert res.exit_code == 2 and "cannot reach PostgreSQL" in " ".join(res.output.split()), res.output
    cfg.write_text(
        f"storage: {{path: {tmp_path / 'x.db'}}}\nbus: {{backend: redis, redis_url: 'redis://:s3cr3tpw@127.0.0.1:1/0'}}\n"
    )
    res = CliRunner().invoke(app, ["config", "check", str(cfg)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "cannot reach Redis" in out and "s3cr3tpw" not in out, res.output
