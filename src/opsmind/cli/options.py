"""Checks shared by the commands' options."""

from __future__ import annotations

import math

import typer


def finite(value: float | None) -> float | None:
    """A typer callback: refuse NaN and infinity, which pass click's ``min``/``max`` range checks (every
    comparison with NaN is false) and then run forever (``--hours inf``) or fail deep inside (``nan``)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, not {value}")
    return value
