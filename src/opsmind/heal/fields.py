"""The incident fields a runbook's templates may use, read from what the platform reported.

Runbooks reference ``{service}``, ``{node}``, ``{version}``, ``{config_key}``... (see
:data:`opsmind.heal.runbook.INCIDENT_FIELDS`). An operator would find these in the platform's own
records, and so does :func:`incident_fields`:

* ``version`` / ``previous_version``: the last ``Deployment`` events of the service ("... updated to v3",
  "... rolled back to v2"), newest first;
* ``config_key`` / ``config_value`` / ``previous_config_value``: the service's last ``ConfigChanged``
  event, in the audit-log shape "<service> config <key> set to '<value>' (was '<old>')";
* ``node``: the node of the most recent ``NodeNotReady`` event that hosts the service's pods, else the
  node of the service's busiest pod (a noisy neighbour shows as one hot node);
* ``replicas``: the service's desired replicas;
* ``busiest_service`` / ``busiest_replicas``: among the request-serving services given with their CPU
  utilisation and desired replicas, the busiest one (where a surge of load runs short first).

A field that cannot be found is left out: a runbook that needs it then fails to plan (and is skipped)
instead of running with a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_VERSION = re.compile(r"(?:updated|rolled back) to (\S+)\s*$")
_CONFIG = re.compile(r"config (\S+) set to '([^']*)'(?: \(was '([^']*)'\))?")


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """A platform event as the healer reads it."""

    at: float
    reason: str
    message: str
    service: str | None = None
    node: str | None = None


@dataclass(frozen=True, slots=True)
class PodView:
    """One pod of the service now: where it runs and how busy it is."""

    pod: str
    node: str
    cpu: float


def incident_fields(
    service: str,
    events: Iterable[SeenEvent],
    pods: Iterable[PodView] = (),
    replicas: float | None = None,
    load: Mapping[str, tuple[float, float]] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The template fields known for an incident filed under ``service`` (see the module docstring);
    ``load`` maps request-serving services to (CPU utilisation, desired replicas)."""
    out: dict[str, str] = {"service": service}
    events = list(events)  # read twice below: a generator would be used up by the first pass
    mine = sorted((e for e in events if e.service == service), key=lambda e: e.at, reverse=True)
    versions = [m.group(1) for e in mine if e.reason == "Deployment" and (m := _VERSION.search(e.message))]
    if versions:
        out["version"] = versions[0]
        older = [v for v in versions[1:] if v != versions[0]]
        if older:
            out["previous_version"] = older[0]
    config = next((m for e in mine if e.reason == "ConfigChanged" and (m := _CONFIG.search(e.message))), None)
    if config is not None:
        out["config_key"], out["config_value"] = config.group(1), config.group(2)
        if config.group(3) is not None:
            out["previous_config_value"] = config.group(3)
    pods = list(pods)
    hosts = {p.node for p in pods}
    failed = sorted(
        (e for e in events if e.reason == "NodeNotReady" and e.node in hosts),
        key=lambda e: e.at,
        reverse=True,
    )
    if failed and failed[0].node:
        out["node"] = failed[0].node
    elif pods:
        out["node"] = max(pods, key=lambda p: (p.cpu, p.pod)).node
    if replicas is not None:
        out["replicas"] = str(int(replicas))
    if load:
        busiest = max(load, key=lambda s: (load[s][0], s))
        out["busiest_service"], out["busiest_replicas"] = busiest, str(int(load[busiest][1]))
    out.update(extra or {})
    return out
