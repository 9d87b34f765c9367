"""Service discovery from Kubernetes: every Deployment of the watched namespaces is a service.

What a Deployment says about itself, by the conventions a cluster already follows:

- the service's name is the Deployment's name;
- its type (the kind the healer observes) is the label ``opsmind.io/type`` (api, ml, worker, database,
  cache), its owner the label ``opsmind.io/owner`` or else ``team``;
- its metrics are scraped when the pod template carries Prometheus' annotations,
  ``prometheus.io/scrape: "true"`` with ``prometheus.io/port`` (default: the first container port),
  ``prometheus.io/path`` (default ``/metrics``) and ``prometheus.io/scheme`` (default ``http``), through
  the Service of the same name: ``<scheme>://<name>.<namespace>.svc:<port><path>`` (one pod per scrape,
  the Service balancing; per-pod scraping is what Prometheus' own Kubernetes discovery is for, and its
  remote-write into OpsMind carries every pod);
- what it calls is the annotation ``opsmind.io/depends-on``, service names separated by commas
  (``"postgres, redis"``): edges of the engine's call graph while the service is registered;
- ``opsmind.io/ignore: "true"`` (label or annotation) leaves it out.

A name that is not a valid service name, or a scrape annotation that names no port, is skipped with
the reason (:attr:`Discovery.skipped`), never guessed at. Listing is read-only (``list`` on
``apps/v1`` Deployments is all the permission it needs) and blocking: callers run it in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from opsmind.types import SERVICE_NAME, SERVICE_TYPES

TYPE_LABEL = "opsmind.io/type"
OWNER_LABEL = "opsmind.io/owner"
IGNORE = "opsmind.io/ignore"
DEPENDS_ON = "opsmind.io/depends-on"


@dataclass(frozen=True, slots=True)
class DiscoveredService:
    name: str
    namespace: str
    service_type: str | None
    owner: str
    metrics_url: str | None
    depends_on: tuple[str, ...] = ()


@dataclass
class Discovery:
    """One listing: the services found and why others were left out."""

    services: list[DiscoveredService] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _first_port(template: Mapping[str, Any]) -> int | None:
    for container in (template.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if isinstance(port.get("containerPort"), int):
                return int(port["containerPort"])
    return None


def from_deployment(deployment: Mapping[str, Any]) -> DiscoveredService | str | None:
    """The service a Deployment (as the API returns it, JSON) describes; a string says why it cannot be
    one; None: it asks to be left out."""
    meta = deployment.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    if labels.get(IGNORE) == "true" or annotations.get(IGNORE) == "true":
        return None
    where = f"{namespace}/{name}"
    if SERVICE_NAME.fullmatch(name) is None:
        return f"{where}: not a service name (1-63 letters, digits, '.', '_' or '-')"
    kind = labels.get(TYPE_LABEL)
    if kind is not None and kind not in SERVICE_TYPES:
        return f"{where}: {TYPE_LABEL}={kind!r} is none of {', '.join(sorted(SERVICE_TYPES))}"
    template = (deployment.get("spec") or {}).get("template") or {}
    pod_annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    url = None
    if pod_annotations.get("prometheus.io/scrape") == "true":
        port_text = pod_annotations.get("prometheus.io/port")
        port = int(port_text) if port_text is not None and port_text.isdigit() else _first_port(template)
        if port is None or not 0 < port < 65536:
            return f"{where}: prometheus.io/scrape is true but no port is annotated or declared"
        path = pod_annotations.get("prometheus.io/path", "/metrics")
        scheme = pod_annotations.get("prometheus.io/scheme", "http")
        if scheme not in ("http", "https"):
            return f"{where}: prometheus.io/scheme={scheme!r} is not http or https"
        url = f"{scheme}://{name}.{namespace}.svc:{port}{path if path.startswith('/') else '/' + path}"
    owner = labels.get(OWNER_LABEL) or labels.get("team") or ""
    calls = [c.strip() for c in annotations.get(DEPENDS_ON, "").split(",") if c.strip()]
    for callee in calls:
        if SERVICE_NAME.fullmatch(callee) is None or callee == name:
            what = "itself" if callee == name else "not a service name"
            return f"{where}: {DEPENDS_ON} names {callee[:80]!r}, {what}"
    return DiscoveredService(name, namespace, kind, owner, url, tuple(dict.fromkeys(calls)))


def discover(deployments: Iterable[Mapping[str, Any]]) -> Discovery:
    """Services from Deployments, the first of a name winning (two namespaces may share one)."""
    out = Discovery()
    seen: dict[str, str] = {}
    for d in deployments:
        found = from_deployment(d)
        if found is None:
            continue
        if isinstance(found, str):
            out.skipped.append(found)
        elif found.name in seen:
            out.skipped.append(
                f"{found.namespace}/{found.name}: the name is taken by namespace {seen[found.name]}'s"
            )
        else:
            seen[found.name] = found.namespace
            out.services.append(found)
    return out


class KubernetesDiscovery:
    """Lists the Deployments of ``namespaces`` (with ``label_selector``) through the official client."""

    def __init__(
        self,
        api: client.ApiClient,
        namespaces: Sequence[str],
        label_selector: str = "",
        request_timeout_s: float = 10.0,
    ) -> None:
        self.apps = client.AppsV1Api(api)
        self.namespaces = list(namespaces)
        self.label_selector = label_selector
        self.request_timeout_s = request_timeout_s

    def deployments(self) -> list[dict[str, Any]]:
        """Every Deployment of the namespaces, as JSON (API errors propagate as the client raises them)."""
        out: list[dict[str, Any]] = []
        for namespace in self.namespaces:
            response: Any = self.apps.list_namespaced_deployment(
                namespace,
                label_selector=self.label_selector,
                _preload_content=False,
                _request_timeout=self.request_timeout_s,
            )
            items = json.loads(response.data).get("items") or []
            for item in items:
                item.setdefault("metadata", {}).setdefault("namespace", namespace)
            out.extend(items)
        return out

    def discover(self) -> Discovery:
        return discover(self.deployments())
