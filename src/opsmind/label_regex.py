"""Label-matcher regular expressions (silences, maintenance windows), compiled by RE2 as Alertmanager's.

Its own module below both ``opsmind.types`` and ``opsmind.config``, which both validate matchers.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is raised to the caller; RE2 would also print it to stderr


@functools.lru_cache(maxsize=1024)
def compile_label_regex(value: str) -> Any:
    """A matcher's regular expression, compiled by RE2 and matched against the whole label value, as
    Alertmanager (Go's RE2 syntax) does. Why RE2 and not Python's ``re``: matching runs on the event loop
    for every incident notification, and a backtracking engine lets one silence such as ``(a+)+`` take
    seconds per label (doubling with each character); RE2 matches in linear time. Patterns RE2 does not
    have (backreferences, lookaround) are refused with its reason. ValueError when it does not compile."""
    try:
        return re2.compile(f"(?:{value})", _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"not a valid regular expression (RE2 syntax, as Alertmanager's): {reason}"
        ) from None
