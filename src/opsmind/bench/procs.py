"""Processes a benchmark starts: an OpsMind server or a peer, pinned to one core, with RSS readings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(pid: int, core: int) -> None:
    """Pin a process to one core where the OS allows it (Linux); elsewhere this is a no-op."""
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(pid, {core})


class Server:
    """A server subprocess with a readiness URL; stops on exit from the ``with`` block."""

    def __init__(self, argv: list[str], base_url: str, ready_path: str, core: int, log_path: Path) -> None:
        self.argv = argv
        self.base_url = base_url
        self.ready_url = base_url + ready_path
        self.core = core
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        pin(self.proc.pid, self.core)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.ready_url, timeout=1).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.argv[0]} was not ready within 60 s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return float(t.user + t.system)


def opsmind_argv(config: Path) -> list[str]:
    return [sys.executable, "-m", "opsmind", "run", "-c", str(config)]
