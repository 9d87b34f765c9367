"""Instance list prices for placement: a small CSV shipped with the package, read without any network.

The bundled ``prices.csv`` holds comparable on-demand Linux instance types on AWS, GCP and Azure in a few
regions each. Every row names the public pricing page it came from and the date it is believed current,
so a decision that quotes a cost can also say how old that cost is. Lines starting with ``#`` are
comments. A user can pass a CSV of their own (negotiated prices, other regions) with the same columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TypeVar

REQUIRED_COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "vcpu",
    "memory_gib",
    "usd_per_hour",
    "source",
    "as_of",
)
OPTIONAL_COLUMNS = ("note",)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class InstancePrice:
    """One instance type in one region, at its hourly on-demand list price."""

    provider: str
    region: str
    instance_type: str
    vcpu: int
    memory_gib: float
    usd_per_hour: float
    source: str
    as_of: date
    note: str = ""

    @property
    def location(self) -> str:
        """``provider/region``: regions are only unique within a provider."""
        return f"{self.provider}/{self.region}"

    @property
    def usd_per_vcpu_hour(self) -> float:
        return self.usd_per_hour / self.vcpu


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError
    return value


def _row_price(row: dict[str, str], where: str) -> InstancePrice:
    def field(column: str) -> str:
        value = (row.get(column) or "").strip()
        if not value:
            raise ValueError(f"{where}, column {column}: empty")
        return value

    def parsed(column: str, parse: Callable[[str], _T], what: str) -> _T:
        text = field(column)
        try:
            return parse(text)
        except ValueError:
            raise ValueError(f"{where}, column {column}: {text!r} is not {what}") from None

    provider = field("provider")
    if provider != provider.lower() or not provider.isidentifier():
        raise ValueError(f"{where}, column provider: {provider!r} must be a lower-case name such as aws")
    source = field("source")
    if not source.startswith("https://"):
        raise ValueError(f"{where}, column source: {source!r} must be the https URL of the pricing page")
    return InstancePrice(
        provider=provider,
        region=field("region"),
        instance_type=field("instance_type"),
        vcpu=parsed("vcpu", _positive_int, "a positive integer"),
        memory_gib=parsed("memory_gib", _positive_float, "a positive number"),
        usd_per_hour=parsed("usd_per_hour", _positive_float, "a positive number"),
        source=source,
        as_of=parsed("as_of", date.fromisoformat, "a date (YYYY-MM-DD)"),
        note=(row.get("note") or "").strip(),
    )


def parse_prices(text: str, name: str = "prices.csv") -> tuple[InstancePrice, ...]:
    """Parse and validate a price table. Errors are ``ValueError`` naming ``name``, the row (counted from 1,
    after the header) with its line number, and the column."""
    lines = text.splitlines(keepends=True)
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.startswith("#")]
    if not numbered:
        raise ValueError(f"{name}: no header line")
    reader = csv.DictReader(io.StringIO("".join(line for _, line in numbered)))
    header = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{name}: missing column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise ValueError(f"{name}: unknown column(s) {', '.join(unknown)}")
    reader.fieldnames = header
    prices: list[InstancePrice] = []
    seen: dict[tuple[str, str, str], int] = {}
    for n, row in enumerate(reader, start=1):
        where = f"{name} row {n} (line {numbered[n][0]})"
        if None in row:
            raise ValueError(f"{where}: more fields than columns")
        price = _row_price(row, where)
        key = (price.provider, price.region, price.instance_type)
        if key in seen:
            raise ValueError(f"{where}, column instance_type: {'/'.join(key)} repeats row {seen[key]}")
        seen[key] = n
        prices.append(price)
    if not prices:
        raise ValueError(f"{name}: no price rows")
    return tuple(prices)


def load_prices(path: str | Path | None = None) -> tuple[InstancePrice, ...]:
    """The bundled price table, or the CSV at ``path``."""
    if path is None:
        text = resources.files("opsmind.decide").joinpath("prices.csv").read_text(encoding="utf-8")
        return parse_prices(text, "prices.csv (bundled)")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_prices(text, str(p))
