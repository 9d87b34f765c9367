"""The compiled loops (``opsmind.detect.jit``): every one the default ensemble calls from Python is built
by ``warm_kernels`` - otherwise the engine's first scrape, or the throughput benchmark's timed section,
would pay a compilation. (Helpers called only from other compiled loops are built inside their callers.)
Checked in a fresh interpreter: in this one, earlier tests may have built them already."""

from __future__ import annotations

import os
import subprocess
import sys

ENTRY_POINTS = (
    "calibrate._learn_tails",
    "cusum._learn_cusum",
    "ewma._learn_ewma",
    "robust._learn_resolution",
    "ensemble._combine",
    "seasonal._expected_rows",
    "seasonal._learn_rows",
    "spectral_residual._windows",
    "spectral_residual._add_eps",
    "spectral_residual._minus_neighbour_mean",
    "spectral_residual._learn_rings",
    "spectral_residual._newest_ratio",
)

CHECK = """
import importlib, sys
from opsmind.detect.ensemble import warm_kernels
names = sys.argv[1:]
modules = {n: importlib.import_module("opsmind.detect." + n.split(".")[0]) for n in names}
kernels = {n: getattr(m, n.split(".")[1]) for n, m in modules.items()}
before = [n for n, k in kernels.items() if k.signatures]
warm_kernels()
after = [n for n, k in kernels.items() if not k.signatures]
print(f"built before: {before}; cold after: {after}")
sys.exit(1 if before or after else 0)
"""


def test_warm_kernels_builds_every_compiled_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *ENTRY_POINTS], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_writable_cache_location_still_imports_and_runs() -> None:
    # Only IPython's locator allowed: outside IPython numba has no cache location for any function, as
    # in a read-only install without a writable home.
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "IPythonCacheLocator"}
    code = "from opsmind.detect.ensemble import warm_kernels; warm_kernels(); print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr
