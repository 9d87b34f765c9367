"""The browser tests' world: one ``opsmind demo`` subprocess per test module (with known users), and Debian's
Chromium driven by Playwright (never a browser Playwright downloads).

Chromium missing is a skip on a developer's machine and a failure where ``OPSMIND_REQUIRE_BROWSER`` is set
(CI installs it). The dashboard not built (``make web``) is always a failure: the page is the product.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
USERS = {
    "admin": {"password": "admin-pass-ui-test", "role": "admin"},
    "oliver": {"password": "operator-pass-ui-test", "role": "operator"},
    "vera": {"password": "viewer-pass-ui-test", "role": "viewer"},
}
OPERATOR, VIEWER = "oliver", "vera"
START_TIMEOUT_S = 90.0
# The demo answers slowly while it catches up its first hour and the browser shares the 2 cores; the
# tests check what is shown, not how fast, so their own API calls wait generously.
HTTP_TIMEOUT_S = 60.0


@dataclass
class Demo:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            r = httpx.post(
                f"{self.url}/api/v1/auth/login",
                json={"username": user, "password": USERS[user]["password"]},
                timeout=HTTP_TIMEOUT_S,
            )
            assert r.status_code == 200, r.text
            self.tokens[user] = r.json()["token"]
        return self.tokens[user]

    def client(self, user: str = OPERATOR) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=HTTP_TIMEOUT_S, headers={"Authorization": f"Bearer {self.token(user)}"}
        )

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_demo(tmp: Path, fault_after_s: float = 1.0) -> Demo:
    """``opsmind demo`` on a free port with the users above; returns once its API and page answer."""
    port = free_port()
    users = tmp / "users.yaml"
    users.write_text(yaml.safe_dump(USERS))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "opsmind", "demo", "--port", str(port), "--data-dir", str(tmp / "data")]
    # No classifier (its training would take the CPU the browser needs): every incident is classified
    # unknown, and the demo's healer proposes the high-risk restart for approval.
    cmd += ["--fault-after", str(fault_after_s), "--auth-file", str(users), "--train-seeds", "0"]
    log = tmp / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    demo = Demo(f"http://127.0.0.1:{port}", log, proc)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the demo exited with {proc.returncode}:\n{demo.tail()}")
        try:
            if httpx.get(f"{demo.url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        stop_demo(demo)
        pytest.fail(f"the demo did not answer within {START_TIMEOUT_S:.0f} s:\n{demo.tail()}")
    page = httpx.get(f"{demo.url}/", timeout=HTTP_TIMEOUT_S)
    if page.status_code != 200:
        stop_demo(demo)
        pytest.fail(f"the dashboard is not served ({page.status_code}: {page.text[:200]}); run `make web`")
    return demo


def stop_demo(demo: Demo) -> None:
    if demo.proc.poll() is None:
        os.killpg(demo.proc.pid, signal.SIGTERM)
        try:
            demo.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(demo.proc.pid, signal.SIGKILL)
            demo.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("ui-demo"))
    yield running
    stop_demo(running)


def need_chromium() -> str:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("OPSMIND_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is required here (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable)
        yield b
        b.close()
