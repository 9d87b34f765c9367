"""Payloads to bytes and back, for buses that leave the process (Redis Streams).

Not pickle: unpickling runs whatever code the bytes name, so anyone able to write to a shared Redis
could run code in every engine reading from it. The format is JSON (``NaN`` and ``Infinity`` written the
way Python's :mod:`json` writes them, so detector figures survive), with small tagged objects
``{"$": tag, ...}`` for what JSON has no type for:

* ``None``, ``bool``, ``int``, ``float``, ``str`` and ``list`` are plain JSON. Subclasses of these (other
  than enums) arrive as the plain type, e.g. a ``numpy.float64`` as a ``float``.
* a ``dict`` whose keys are all strings and which has no ``"$"`` key is a plain JSON object; any other
  dict, ``tuple``, ``set``, ``frozenset`` and ``bytes`` are tagged, so they come back as what they were.
* :class:`~opsmind.types.SeriesSamples` and :class:`~opsmind.types.Series` are written field by field:
  samples travel in bulk and their timestamps and values are plain JSON arrays; a list of samples (an
  ingest batch) is written in columns, one object for the whole list, each series by its key.
* a :class:`~opsmind.types.Record` (Anomaly, Event, Incident, ...) is tagged with its class name and
  decoded with pydantic's validation, from its python-mode dump encoded by the rules here. Pydantic's own
  JSON would write NaN and infinities as ``null``, which an ``Anomaly`` then refuses.
* a dataclass instance or an enum member is tagged with ``module:qualname`` and decoded by calling the
  class. Only classes this codec trusts are built: ones passed to :func:`register_dataclass`, and the
  classes of the fixed :data:`TRUSTED_MODULES` (the engine's payload types that live above the bus, such
  as ``IncidentEvent`` and ``LoadPrediction``). Those modules are imported by name when a payload needs
  one, which keeps the bus below them in the import layers; nothing outside the list is ever imported.

An unsupported payload raises :class:`TypeError` from :func:`encode`, i.e. when it is published, never
later in a consumer. Bytes that do not decode raise :class:`CodecError`.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import json
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from opsmind.types import Record, Series, SeriesSamples

__all__ = ["TRUSTED_MODULES", "CodecError", "decode", "encode", "register_dataclass"]

T = TypeVar("T", bound=type)

TAG = "$"

# The modules whose dataclasses and enums may be built from a payload without being registered: the
# engine's own payload types. A module is imported only when a payload names it.
TRUSTED_MODULES: frozenset[str] = frozenset(
    {
        "opsmind.types.records",
        "opsmind.types.series",
        "opsmind.incidents.stage",
        "opsmind.predict.stage",
        "opsmind.predict.capacity",
    }
)

# Series already decoded from a batch, by key: a fleet sends the same series every scrape, and parsing a key
# costs more than everything else of its sample. Bounded by SERIES_CACHE_MAX (about 300 bytes each).
SERIES_CACHE_MAX = 1_000_000
_series_by_key: dict[str, Series] = {}

# Classes trusted by registration, by their tag; and the tag of every class checked so far, so the check
# costs one dict lookup per payload after the first.
_registered: dict[str, type] = {}
_trusted_tags: dict[type, str] = {}
_records: dict[str, type[Record] | None] = {}


class CodecError(ValueError):
    """Bytes that are not a payload this codec wrote, or name a class it does not trust."""


def register_dataclass(cls: T) -> T:
    """Trust the dataclass or enum ``cls`` as a payload type; usable as a class decorator.

    The module that defines a payload type outside :data:`TRUSTED_MODULES` registers it at import time;
    a consumer must have imported that module too, since decoding never imports an untrusted module.
    """
    if not (isinstance(cls, type) and (dataclasses.is_dataclass(cls) or issubclass(cls, Enum))):
        raise TypeError(f"register_dataclass takes a dataclass or an Enum class, not {cls!r}")
    tag = _tag(cls)
    known = _registered.get(tag)
    if known is not None and known is not cls:
        raise TypeError(f"another class is already registered as {tag}")
    _registered[tag] = cls
    _trusted_tags[cls] = tag
    return cls


def _tag(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(tag: str) -> type | None:
    """The trusted class named ``tag``, importing its module only if that module is trusted."""
    cls = _registered.get(tag)
    if cls is not None:
        return cls
    module_name, _, qualname = tag.partition(":")
    if module_name not in TRUSTED_MODULES or not qualname:
        return None
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    # Defined there, not merely imported there: a trusted module does not vouch for its imports.
    if not isinstance(obj, type) or obj.__module__ != module_name or obj.__qualname__ != qualname:
        return None
    return obj if dataclasses.is_dataclass(obj) or issubclass(obj, Enum) else None


def _trusted_tag(cls: type) -> str:
    """The tag of ``cls``; TypeError when a consumer could not build it back."""
    tag = _trusted_tags.get(cls)
    if tag is None:
        tag = _tag(cls)
        if _resolve(tag) is not cls:
            raise TypeError(
                f"cannot encode a {cls.__module__}.{cls.__qualname__} for the bus: it is neither defined at "
                "the top of one of the codec's trusted modules nor registered "
                "(opsmind.bus.codec.register_dataclass)"
            )
        _trusted_tags[cls] = tag
    return tag


def _record_class(name: str) -> type[Record] | None:
    """The Record subclass called ``name`` (``None`` when there is none, or several); the table is
    rebuilt when a name is missing, since a module imported since may have added a subclass."""
    if name not in _records:
        _records.clear()
        seen: set[type[Record]] = set()
        todo: list[type[Record]] = [Record]
        while todo:
            sub = todo.pop()
            if sub in seen:  # reached again through another base
                continue
            seen.add(sub)
            todo.extend(sub.__subclasses__())
            # Two records of one name could not be told apart in a payload: neither is encoded then.
            _records[sub.__name__] = None if sub.__name__ in _records else sub
    return _records.get(name)


# -- encoding ----------------------------------------------------------------------------------------


def encode(payload: Any) -> bytes:
    """``payload`` as JSON bytes; TypeError naming the first value that cannot be encoded."""
    try:
        tree = _plain(payload)
    except RecursionError as exc:  # a structure that contains itself, or is nested absurdly deep
        raise TypeError(
            "cannot encode payload for the bus: it is nested too deeply or contains itself"
        ) from exc
    try:
        return json.dumps(tree, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:  # a value of the wrong type inside SeriesSamples' arrays
        raise TypeError(f"cannot encode payload for the bus: {exc}") from exc


def _pairs(labels: tuple[tuple[str, str], ...]) -> list[list[str]]:
    return [[k, v] for k, v in labels]


def _plain(value: Any) -> Any:
    """``value`` as a tree of JSON types, tagging what JSON cannot say."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is float or kind is bool:
        return value
    if kind is list:
        if value and all(type(v) is SeriesSamples for v in value):
            return _batch(value)
        return [_plain(v) for v in value]
    if kind is dict:
        return _dict(value)
    if kind is tuple:
        return {TAG: "tuple", "v": [_plain(v) for v in value]}
    if kind is SeriesSamples:
        # Bulk data: the numbers go to json as they are (it refuses anything that is not a JSON type).
        return {
            TAG: "samples",
            "name": value.series.name,
            "labels": _pairs(value.series.labels),
            "t": list(value.timestamps),
            "v": list(value.values),
        }
    if kind is Series:
        return {TAG: "series", "name": value.name, "labels": _pairs(value.labels)}
    if isinstance(value, Record):
        name = kind.__name__
        if _record_class(name) is not kind:
            raise TypeError(f"cannot encode record {kind.__qualname__}: its class name is not unique")
        return {TAG: "record", "type": name, "v": _plain(value.model_dump(mode="python", round_trip=True))}
    if isinstance(value, Enum):
        return {TAG: "enum", "type": _trusted_tag(kind), "v": _plain(value.value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        tag = _trusted_tag(kind)
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return {TAG: "dataclass", "type": tag, "v": fields}
    # Subclasses of the plain types, checked last so the common cases stay cheap.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return _dict(value)
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [_plain(v) for v in value]}
    if isinstance(value, frozenset | set):
        return {TAG: "frozenset" if isinstance(value, frozenset) else "set", "v": [_plain(v) for v in value]}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot encode a {kind.__module__}.{kind.__qualname__} for the bus: {value!r:.200}")


def _batch(batch: list[SeriesSamples]) -> dict[str, Any]:
    """A list of samples (an ingest batch: thousands of series, a point or a few each) in columns: one
    JSON object for the whole list, each series by its key alone (the reader parses a key once and then
    finds it in :data:`_series_by_key`). Field by field, series by series, a remote-write batch of 2,000
    series took longer to decode than the store took to write it."""
    return {
        TAG: "batch",
        "k": [s.series.key for s in batch],
        "t": [s.timestamps for s in batch],
        "v": [s.values for s in batch],
    }


def _dict(value: dict[Any, Any]) -> Any:
    if TAG not in value and all(type(k) is str for k in value):
        return {k: _plain(v) for k, v in value.items()}
    return {TAG: "dict", "items": [[_plain(k), _plain(v)] for k, v in value.items()]}


# -- decoding ----------------------------------------------------------------------------------------


def decode(data: bytes | str) -> Any:
    """The payload ``encode`` made ``data`` from; CodecError when it is not one."""
    try:
        return json.loads(data, object_hook=_object)
    except CodecError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as exc:
        # ValueError also covers malformed JSON and pydantic's ValidationError.
        raise CodecError(f"undecodable bus payload: {exc}") from exc


def _series(obj: dict[str, Any]) -> Series:
    # Series(...) rather than Series.of: the producer validated the names; the key is recomputed here.
    return Series(obj["name"], tuple((k, v) for k, v in obj["labels"]))


def _unbatch(obj: dict[str, Any]) -> list[SeriesSamples]:
    cache = _series_by_key
    if len(cache) > SERIES_CACHE_MAX:
        cache.clear()  # a fleet that churns through series: start again rather than grow without bound
    series: list[Series] = []
    for key in obj["k"]:
        found = cache.get(key)
        if found is None:
            found = Series.parse(key)  # validates, as the ingest path did; interns names and values
            cache[found.key] = found  # keyed by its own key string: the decoded one is not kept
        series.append(found)
    return [SeriesSamples(s, tuple(t), tuple(v)) for s, t, v in zip(series, obj["t"], obj["v"], strict=True)]


def _build(obj: dict[str, Any]) -> Any:
    cls = _resolve(obj["type"])
    if cls is None:
        raise CodecError(f"bus payload names an untrusted or unknown class {obj['type']!r}")
    if obj[TAG] == "enum":
        if not issubclass(cls, Enum):
            raise CodecError(f"{obj['type']!r} is not an enum")
        return cls(obj["v"])
    if not dataclasses.is_dataclass(cls) or issubclass(cls, Enum):
        raise CodecError(f"{obj['type']!r} is not a dataclass")
    return cls(**obj["v"])


def _record(obj: dict[str, Any]) -> Record:
    cls = _record_class(obj["type"])
    if cls is None:
        raise CodecError(f"bus payload names an unknown record type {obj['type']!r}")
    return cls.model_validate(obj["v"])


# Inner objects are decoded first (json's object_hook works bottom-up), so each builder gets its fields
# already in their final types.
_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tuple": lambda obj: tuple(obj["v"]),
    "dict": lambda obj: dict(obj["items"]),
    "set": lambda obj: set(obj["v"]),
    "frozenset": lambda obj: frozenset(obj["v"]),
    "bytes": lambda obj: base64.b64decode(obj["v"], validate=True),
    "samples": lambda obj: SeriesSamples(_series(obj), tuple(obj["t"]), tuple(obj["v"])),
    "batch": _unbatch,
    "series": _series,
    "record": _record,
    "dataclass": _build,
    "enum": _build,
}


def _object(obj: dict[str, Any]) -> Any:
    tag = obj.get(TAG)
    if tag is None:
        return obj
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise CodecError(f"bus payload has an unknown tag {tag!r}")
    return decoder(obj)
