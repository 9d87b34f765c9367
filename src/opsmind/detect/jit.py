"""Compiled per-row loops for the detectors' hot paths (numba, already installed with statsforecast).

A detector's vectorised numpy update makes one pass over all rows per arithmetic operation, so a state
update of a few dozen operations reads and writes the state a few dozen times; a compiled loop over the
rows does all of them while a row's state sits in cache. Only loops whose numpy form dominated the
profile of ``opsmind bench detect`` are compiled; each kernel computes exactly what the numpy code it
replaced computed (same operations, same order, double precision), so the detectors' definitions in
their module docstrings stay the reference.

``cache=True`` keeps the machine code under ``__pycache__`` so only the first import on a machine pays
the compilation (a few seconds); ``nogil`` lets the engine's other threads run during a step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

Fn = TypeVar("Fn", bound=Callable[..., Any])


def kernel(fn: Fn) -> Fn:
    """Compile ``fn`` in nopython mode with the settings above (no fastmath: results must match numpy).
    Where numba finds no writable cache location (a read-only install and no writable home), it raises
    at decoration, that is on import: then the loop is compiled in every process instead."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]  # calls as fn
    except RuntimeError:
        return numba.njit(nogil=True)(fn)  # type: ignore[return-value]
