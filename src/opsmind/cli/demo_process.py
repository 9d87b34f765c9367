"""``opsmind demo`` as a subprocess: what ``opsmind ui screenshots`` and the browser tests start.

The demo runs in its own process group (so stopping it also stops the classifier-training workers it may
fork), with a data folder and an ``--auth-file`` of known users, and writes its log to a file that
:meth:`DemoProcess.tail` shows when something goes wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml


class DemoError(Exception):
    """The demo exited, did not answer, or does not serve the dashboard; the message says which."""


@dataclass
class DemoProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def wait_ready(self, timeout_s: float) -> None:
        """Until the API answers and the dashboard is served; stops the demo before raising."""
        try:
            self._wait_ready(timeout_s)
        except BaseException:  # never leave the demo running behind us
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(f"the demo exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise DemoError(f"the demo did not answer within {timeout_s:.0f} s:\n{self.tail()}")
        try:
            page = httpx.get(f"{self.url}/", timeout=60)
        except httpx.HTTPError as exc:
            raise DemoError(f"the demo does not answer: {exc!r}\n{self.tail()}") from exc
        if page.status_code != 200:
            raise DemoError(
                f"the dashboard is not served ({page.status_code}: {page.text[:200]}); run `make web`"
            )


def launch_demo(
    directory: Path, users: Mapping[str, Mapping[str, str]], port: int, fault_after_s: float
) -> DemoProcess:
    """Start ``opsmind demo`` on ``port`` with ``users`` (name -> password, role), its data and log in
    ``directory``, and no classifier training (it would take the CPU a browser needs: every incident is
    then classified unknown and the healer proposes a high-risk restart for approval). Returns at once;
    call :meth:`DemoProcess.wait_ready`."""
    auth_file = directory / "users.yaml"
    auth_file.write_text(yaml.safe_dump({name: dict(user) for name, user in users.items()}))
    cmd = [
        sys.executable,
        "-m",
        "opsmind",
        "demo",
        "--port",
        str(port),
        "--data-dir",
        str(directory / "data"),
    ]
    cmd += ["--fault-after", str(fault_after_s), "--auth-file", str(auth_file), "--train-seeds", "0"]
    log = directory / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    return DemoProcess(f"http://127.0.0.1:{port}", proc, log)
