"""``opsmind replay`` pushes a file into a running server; bad files fail with the line named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from opsmind.cli.main import app
from tests.conftest import RunningServer, start_server


def test_replay_csv_into_a_running_server(server: RunningServer, tmp_path: Path) -> None:
    f = tmp_path / "cpu.csv"
    f.write_text("timestamp,value\n" + "".join(f"2024-01-01 00:{m:02d}:00,{m * 1.5}\n" for m in range(30)))
    res = CliRunner().invoke(
        app,
        [
            "replay",
            str(f),
            "--metric",
            "cpu_utilisation",
            "-l",
            "service=billing",
            "--url",
            server.url,
            "--batch-size",
            "7",
        ],
    )
    assert res.exit_code == 0, res.output
    with server.client() as c:
        q = c.get(
            "/api/v1/series/query",
            params={
                "series": 'cpu_utilisation{service="billing"}',
                "start": 0,
                "end": 2e9,
                "resolution": "raw",
            },
        ).json()
    assert len(q["values"]) == 30 and q["values"][3] == 4.5
    assert q["timestamps"][0] == 1704067200.0


def test_replay_reports_bad_rows_and_bad_arguments(server: RunningServer, tmp_path: Path) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("timestamp,value\n1700000000,1\nnot-a-time,2\n")
    res = CliRunner().invoke(app, ["replay", str(f), "--metric", "m", "--url", server.url])
    assert res.exit_code == 2 and "bad.csv:3:" in res.output and "not-a-time" in res.output
    res = CliRunner().invoke(app, ["replay", str(tmp_path / "missing.csv"), "--url", server.url])
    assert res.exit_code == 2 and "no such file" in " ".join(res.output.split())  # rich wraps lines
    res = CliRunner().invoke(app, ["replay", str(f), "-l", "novalue", "--url", server.url])
    assert res.exit_code == 2 and "expected k=v" in res.output
    with server.client() as c:
        assert c.get("/api/v1/series").json() == []


def test_bad_speed_url_and_names_are_refused_before_reading(tmp_path: Path) -> None:
    f = tmp_path / "ok.csv"
    f.write_text("timestamp,value\n1700000000,1\n")
    for speed in ("-1", "inf"):
        res = CliRunner().invoke(app, ["replay", str(f), "--speed", speed])
        assert res.exit_code == 2 and "invalid --speed" in " ".join(res.output.split())
    for url in ("http://[::1", "localhost:8080"):  # the second was taken for a URL of scheme "localhost"
        res = CliRunner().invoke(app, ["replay", str(f), "--url", url])
        assert res.exit_code == 2 and "invalid --url" in " ".join(res.output.split()), res.output
    # The reason quotes a pattern in brackets, which must be printed as it is, not taken for markup.
    res = CliRunner().invoke(app, ["replay", str(f), "-l", "bad name=x", "--url", "http://127.0.0.1:1"])
    assert res.exit_code == 2 and "must match [a-zA-Z_]" in " ".join(res.output.split())


def test_an_empty_file_is_not_a_successful_replay(tmp_path: Path) -> None:
    for name, text in (("empty.csv", ""), ("header.csv", "timestamp,value\n")):
        f = tmp_path / name
        f.write_text(text)
        res = CliRunner().invoke(app, ["replay", str(f), "--metric", "m", "--url", "http://127.0.0.1:1"])
        assert res.exit_code == 2 and "no points to replay" in " ".join(res.output.split()), res.output


def test_demo_inject_refuses_a_url_that_is_not_one() -> None:
    res = CliRunner().invoke(app, ["demo", "inject", "bad_deployment", "--url", "http://[::1"])
    assert res.exit_code == 2 and "invalid --url" in " ".join(res.output.split()), res.output
    res = CliRunner().invoke(app, ["demo", "inject", "bad_deployment", "-p", "error_rate=nan"])
    assert res.exit_code == 2 and "a finite number" in " ".join(res.output.split()), res.output


def test_replay_sends_its_token_and_says_when_retention_will_delete_the_points(
    make_settings: Any, tmp_path: Path
) -> None:
    # With access control on (as in the demo) replay could not authenticate: 401, and no --token option.
    running, srv, thread = start_server(make_settings(api={"auth": {"enabled": True}}))
    try:
        engine = running.engine
        secret, _ = engine.credentials.create_token("loader", "operator", engine.clock.now())
        f = tmp_path / "old.csv"  # five points, the last two on the same minute
        rows = [1_600_000_000 + 60 * i for i in (0, 1, 2, 3, 3)]
        f.write_text("timestamp,value\n" + "".join(f"{t},{i}\n" for i, t in enumerate(rows)))
        args = ["replay", str(f), "--metric", "m", "--url", running.url]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 1 and "HTTP 401" in refused.output, refused.output
        res = CliRunner().invoke(app, args, env={"OPSMIND_TOKEN": secret})
        text = " ".join(res.output.split())
        assert res.exit_code == 0 and "replayed 5 points" in text, res.output
        assert "keeps raw points 2 days" in text and "--align-now" in text  # 2020's points: deleted soon
        assert "1 of them repeated a timestamp" in text  # one value kept per series and timestamp
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
