"""``opsmind config check`` on files and environment overrides that cannot be read: named, no traceback."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from opsmind.cli.main import app


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
