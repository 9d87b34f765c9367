"""Series identity after the Prometheus data model.

A series is a metric name plus a set of labels. Names follow Prometheus' rules
(https://prometheus.io/docs/concepts/data_model/): metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``,
label names match ``[a-zA-Z_][a-zA-Z0-9_]*`` and names starting with ``__`` are reserved for internal
use. The ``service`` label ties a series to a service of the fleet.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SERVICE_LABEL = "service"
NAME_LABEL = "__name__"


class InvalidSeriesError(ValueError):
    """A metric or label name breaks the data model; the message says which and why."""


def validate_metric_name(name: str) -> None:
    if not METRIC_NAME_RE.match(name):
        raise InvalidSeriesError(f"invalid metric name {name!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")


def validate_label_name(name: str) -> None:
    if not LABEL_NAME_RE.match(name):
        raise InvalidSeriesError(f"invalid label name {name!r}: must match [a-zA-Z_][a-zA-Z0-9_]*")
    if name.startswith("__"):
        raise InvalidSeriesError(f"invalid label name {name!r}: names starting with '__' are reserved")


def validate_label_value(name: str, value: str) -> None:
    # JSON lets a client escape half a surrogate pair ("\ud800"); such a string is not Unicode text and
    # cannot be encoded to store or send it on, so it is refused while validating, before anything is stored.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidSeriesError(
                f"label {name!r} has a value that is not valid Unicode (a lone surrogate such as \\ud800)"
            ) from None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True, slots=True)
class Series:
    """One time series: a metric name and its labels, sorted by label name.

    Build it with :meth:`of` (validates) or :meth:`from_pairs` (validates a raw list of pairs, the way
    remote-write and scrape deliver them). ``key`` is the canonical text form used as the store's key.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    key: str = field(default="", compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self._render())

    def _render(self) -> str:
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None) -> Series:
        validate_metric_name(name)
        pairs = sorted((labels or {}).items())
        for k, v in pairs:
            validate_label_name(k)
            if not isinstance(v, str):
                raise InvalidSeriesError(f"label {k!r} has a non-string value {v!r}")
            validate_label_value(k, v)
        return cls(sys.intern(name), tuple((sys.intern(k), sys.intern(v)) for k, v in pairs if v != ""))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Series:
        """Build a series from ``(name, value)`` pairs that include ``__name__``.

        Duplicate label names, a missing or invalid metric name and invalid label names raise
        :class:`InvalidSeriesError`. Labels with empty values are dropped, as Prometheus does.
        """
        name: str | None = None
        seen: set[str] = set()
        rest: list[tuple[str, str]] = []
        for k, v in pairs:
            if k in seen:
                raise InvalidSeriesError(f"duplicate label name {k!r}")
            seen.add(k)
            if k == NAME_LABEL:
                name = v
                continue
            validate_label_name(k)
            if v != "":
                # Interning: a fleet repeats the same label names (and most values) across hundreds of
                # thousands of series; one shared string each keeps memory per series low.
                rest.append((sys.intern(k), sys.intern(v)))
        if name is None:
            raise InvalidSeriesError("series has no __name__ label (metric name)")
        validate_metric_name(name)
        rest.sort()
        return cls(sys.intern(name), tuple(rest))

    @property
    def service(self) -> str | None:
        for k, v in self.labels:
            if k == SERVICE_LABEL:
                return v
        return None

    def label(self, name: str) -> str | None:
        for k, v in self.labels:
            if k == name:
                return v
        return None

    def as_dict(self) -> dict[str, str]:
        return {NAME_LABEL: self.name, **dict(self.labels)}

    @classmethod
    def parse(cls, key: str) -> Series:
        """Parse the canonical text form produced by ``key`` (``name{a="b",c="d"}``)."""
        if "{" not in key:
            validate_metric_name(key)
            return cls(key)
        name, _, rest = key.partition("{")
        if not rest.endswith("}"):
            raise InvalidSeriesError(f"invalid series selector {key!r}: missing closing brace")
        body = rest[:-1]
        labels: dict[str, str] = {}
        i = 0
        while i < len(body):
            eq = body.find("=", i)
            if eq < 0 or eq + 1 >= len(body) or body[eq + 1] != '"':
                raise InvalidSeriesError(f'invalid series selector {key!r}: expected label="value"')
            lname = body[i:eq].strip()
            j = eq + 2
            chars: list[str] = []
            while j < len(body) and body[j] != '"':
                if body[j] == "\\" and j + 1 < len(body):
                    nxt = body[j + 1]
                    chars.append("\n" if nxt == "n" else nxt)
                    j += 2
                    continue
                chars.append(body[j])
                j += 1
            if j >= len(body):
                raise InvalidSeriesError(f"invalid series selector {key!r}: unterminated label value")
            if lname in labels:
                raise InvalidSeriesError(f"duplicate label name {lname!r}")
            labels[lname] = "".join(chars)
            i = j + 1
            if i < len(body) and body[i] == ",":
                i += 1
        return cls.of(name, labels)
