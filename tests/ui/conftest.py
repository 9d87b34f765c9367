"""The browser tests' world: one ``opsmind demo`` subprocess per test module (with known users), and Debian's
Chromium driven by Playwright (never a browser Playwright downloads).

Chromium missing is a skip on a developer's machine and a failure where ``OPSMIND_REQUIRE_BROWSER`` is set
(CI installs it). The dashboard not built (``make web``) is always a failure: the page is the product.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmind.cli.demo_process import DemoError, DemoProcess, launch_demo
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
class Demo(DemoProcess):
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


def start_demo(tmp: Path, fault_after_s: float = 1.0) -> Demo:
    """``opsmind demo`` on a free port with the users above; returns once its API and page answer."""
    started = launch_demo(tmp, USERS, free_port(), fault_after_s)
    demo = Demo(started.url, started.proc, started.log)
    try:
        demo.wait_ready(START_TIMEOUT_S)
    except DemoError as exc:
        pytest.fail(str(exc))
    return demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("ui-demo"))
    yield running
    running.stop()


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
