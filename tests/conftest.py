"""Shared fixtures: a real OpsMind server on a free loopback port, with its own temporary database."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from opsmind.api.app import create_app
from opsmind.config import Settings, load_settings
from opsmind.engine import Engine


def need_prometheus() -> str:
    """The Debian prometheus binary; skipped when missing, a failure where CI requires it."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("OPSMIND_REQUIRE_PROMETHEUS"):
            pytest.fail("the prometheus binary is required here (apt-get install prometheus)")
        pytest.skip("prometheus binary not installed (apt-get install prometheus)")
    return binary


def need_alertmanager() -> str:
    """The Debian Alertmanager binary; skipped when missing, a failure where CI requires it."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        if os.environ.get("OPSMIND_REQUIRE_PROMETHEUS"):
            pytest.fail("the alertmanager binary is required here (apt-get install prometheus-alertmanager)")
        pytest.skip("alertmanager binary not installed (apt-get install prometheus-alertmanager)")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    engine: Engine
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


def start_server(settings: Settings) -> tuple[RunningServer, uvicorn.Server, threading.Thread]:
    engine = Engine(settings)
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=settings.api.port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.api.port}"
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("OpsMind test server did not start within 15 s")
    return RunningServer(url, engine, settings), server, thread


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    def _make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "storage": {"path": str(tmp_path / "opsmind.db")},
            "api": {"port": free_port()},
            "notify": {"log": False},
        }
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k] = {**base[k], **v}
            else:
                base[k] = v
        return load_settings(**base)

    return _make


@pytest.fixture
def server(make_settings: Any) -> Iterator[RunningServer]:
    running, srv, thread = start_server(make_settings())
    yield running
    srv.should_exit = True
    thread.join(timeout=15)
