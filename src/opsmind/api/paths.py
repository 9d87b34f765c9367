"""The ``label`` path convertor: a path segment that may hold any label value, '/' and newlines included.

A service is named by its series' ``service`` label, and Prometheus label values may hold '/' (a job
named ``namespace/name``). Starlette's ``{x:path}`` would take it, but its ``.*`` stops at a newline and
its pattern's ``$`` then matches before a trailing one, so ``checkout%0A`` would be read as ``checkout``
(a pause meant for a bad name would pause a real service). ``{x:label}`` matches every character, so
such a name reaches the route whole and is refused there with its reason. Routes with a fixed suffix
(``/{name:label}/health``) must be registered before the bare ``/{name:label}`` route.

Importing this module registers the convertor; :mod:`opsmind.api` imports it first.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class LabelConvertor(Convertor[str]):
    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("label", LabelConvertor())
