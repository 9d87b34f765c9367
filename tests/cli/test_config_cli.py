"""``opsmind config check`` on files and environment overrides that cannot be read: named, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.cli.main import app, main


def test_a_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    f = tmp_path / "opsmind.yaml"
    f.write_bytes(b"\xff\xfe\x00api:")
    res = CliRunner().invoke(app, ["config", "check", str(f)])
    assert res.exit_code == 2 and "opsmind.yaml: not UTF-8 text" in " ".join(res.output.split())


def test_a_section_variable_that_is_not_json_is_named(tmp_path: Path) -> None:
    f = tmp_path / "opsmind.yaml"
    f.write_text("api:\n  port: 8080\n")
    res = CliRunner().invoke(app, ["config", "check", str(f)], env={"OPSMIND_API": "{"})
    assert res.exit_code == 2 and "OPSMIND_* environment variable" in " ".join(res.output.split())


def flat(text: str) -> str:
    return " ".join(text.split())


def test_check_finds_what_the_start_would_refuse(tmp_path: Path) -> None:
    # config check said "valid" and opsmind run then died with a traceback: a runbook folder that is not
    # there, a storage.path that is not a database, a folder that cannot be written.
    not_db = tmp_path / "not.db"
    not_db.write_text("hello")
    cases = {
        "heal:\n  enabled: true\n  runbook_dirs: [/nonexistent]\n": "heal.runbook_dirs: invalid runbooks",
        f"storage:\n  path: {not_db}\n": f"storage.path: {not_db} is not a database OpsMind can open",
        "storage:\n  path: /proc/nope/x.db\n": "storage.path: cannot create /proc/nope/x.db",
    }
    for text, reason in cases.items():
        f = tmp_path / "c.yaml"
        f.write_text(text)
        res = CliRunner().invoke(app, ["config", "check", str(f)])
        assert res.exit_code == 2 and reason in flat(res.output), res.output
    f.write_text(f"storage:\n  path: {tmp_path / 'new.db'}\n")
    res = CliRunner().invoke(app, ["config", "check", str(f)])
    assert res.exit_code == 0 and "valid" in res.output, res.output
    assert not (tmp_path / "new.db").exists()  # a check creates nothing


def test_run_reports_a_bad_setting_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(f"storage:\n  path: {tmp_path}\n")  # a folder, not a database file
    with pytest.raises(SystemExit) as stop:
        main(["run", "-c", str(f)])
    err = flat(capsys.readouterr().err)
    # It said "database (storage.path): unable to open database file", naming neither the file nor why.
    assert stop.value.code == 2 and f"storage.path: {tmp_path} is a folder; name the database file" in err, (
        err
    )
    assert "Traceback" not in err


def test_infinite_numbers_are_refused(tmp_path: Path) -> None:
    # .inf passed every bound and then failed storage maintenance on every cycle.
    f = tmp_path / "c.yaml"
    f.write_text("storage:\n  raw_retention_s: .inf\n")
    res = CliRunner().invoke(app, ["config", "check", str(f)])
    assert res.exit_code == 2 and "raw_retention_s: Input should be a finite number" in flat(res.output)


def test_a_bad_value_from_the_environment_is_not_blamed_on_the_file(tmp_path: Path) -> None:
    f = tmp_path / "opsmind.yaml"
    f.write_text("{}\n")
    res = CliRunner().invoke(app, ["config", "check", str(f)], env={"OPSMIND_API__PORT": "abc"})
    assert res.exit_code == 2 and "values from the environment: OPSMIND_API__PORT" in flat(res.output)


def test_a_repeated_section_is_refused(tmp_path: Path) -> None:
    # The second api: section silently replaced the first (its port was lost) and the check said "valid".
    f = tmp_path / "opsmind.yaml"
    f.write_text("api:\n  port: 9090\nstorage:\n  path: x.db\napi:\n  host: 0.0.0.0\n")
    res = CliRunner().invoke(app, ["config", "check", str(f)])
    assert res.exit_code == 2 and "found duplicate key 'api' (first on line 1)" in flat(res.output), (
        res.output
    )


def test_a_variable_with_one_underscore_too_few_is_named(tmp_path: Path) -> None:
    # OPSMIND_API_PORT=9090 was ignored without a word: the port stayed 8080.
    f = tmp_path / "opsmind.yaml"
    f.write_text("{}\n")
    env = {"OPSMIND_API_PORT": "9090", "OPSMIND_TOKEN": "not a setting, left alone"}
    res = CliRunner().invoke(app, ["config", "check", str(f)], env=env)
    text = flat(res.output)
    assert res.exit_code == 2 and "OPSMIND_API_PORT (did you mean OPSMIND_API__PORT?)" in text, res.output
    assert "OPSMIND_TOKEN" not in text


def test_a_variable_naming_no_section_is_named(tmp_path: Path) -> None:
    # OPSMIND_STORAGEE__PATH was ignored without a word: the database stayed opsmind.db.
    f = tmp_path / "opsmind.yaml"
    f.write_text("{}\n")
    env = {"OPSMIND_STORAGEE__PATH": "/var/lib/x.db", "OPSMIND_REQUIRE_REDIS": "1"}
    res = CliRunner().invoke(app, ["config", "check", str(f)], env=env)
    text = flat(res.output)
    assert res.exit_code == 2, res.output
    assert (
        "OPSMIND_STORAGEE__PATH (no settings section 'storagee'; did you mean OPSMIND_STORAGE__PATH?)" in text
    )
    assert "OPSMIND_REQUIRE_REDIS" not in text
