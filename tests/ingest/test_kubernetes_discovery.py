"""Kubernetes service discovery: what a Deployment says (pure cases), the listing against kmock's
Kubernetes emulator over real HTTP with the official client, and the engine keeping its registry in
line with the cluster (registered, changed, removed; a person's registration left alone).

kmock's emulator does not filter lists by label selector (it answers every object of the namespace), so
the selector is not exercised here; the client sends it as the API documents."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from opsmind.config import Settings
from opsmind.engine import Engine
from opsmind.engine.registry import DISCOVERED_BY_KUBERNETES
from opsmind.ingest.kubernetes_discovery import (
    DiscoveredService,
    KubernetesDiscovery,
    discover,
    from_deployment,
)
from opsmind.types import AuditEntry, ServiceRegistration


def deployment(
    name: str,
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
    ports: list[int] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    containers = [{"name": "app", "ports": [{"containerPort": p} for p in ports or []]}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"annotations": pod_annotations or {}},
                "spec": {"containers": containers},
            },
        },
    }


SCRAPED = {"prometheus.io/scrape": "true", "prometheus.io/port": "9102", "prometheus.io/path": "stats"}


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (
            deployment(
                "recommender", labels={"opsmind.io/type": "ml", "team": "ranking"}, pod_annotations=SCRAPED
            ),
            DiscoveredService(
                "recommender", "shop", "ml", "ranking", "http://recommender.shop.svc:9102/stats"
            ),
        ),
        (
            deployment("api", pod_annotations={"prometheus.io/scrape": "true"}, ports=[8080, 9090]),
            DiscoveredService("api", "shop", None, "", "http://api.shop.svc:8080/metrics"),
        ),
        (
            deployment("db", labels={"opsmind.io/owner": "dba", "team": "x"}),
            DiscoveredService("db", "shop", None, "dba", None),
        ),
        (deployment("quiet", labels={"opsmind.io/ignore": "true"}), None),
        (deployment("quiet", annotations={"opsmind.io/ignore": "true"}), None),
        (
            deployment("x", labels={"opsmind.io/type": "mainframe"}),
            "shop/x: opsmind.io/type='mainframe' is none",
        ),
        (
            deployment("noport", pod_annotations={"prometheus.io/scrape": "true"}),
            "shop/noport: prometheus.io/scrape is true but no port",
        ),
        (
            deployment("ftp", pod_annotations={**SCRAPED, "prometheus.io/scheme": "ftp"}),
            "shop/ftp: prometheus.io/scheme='ftp' is not http or https",
        ),
        (
            deployment("cart", annotations={"opsmind.io/depends-on": " postgres, redis,,postgres "}),
            DiscoveredService("cart", "shop", None, "", None, ("postgres", "redis")),
        ),
        (
            deployment("cart", annotations={"opsmind.io/depends-on": "postgres, bad name"}),
            "shop/cart: opsmind.io/depends-on names 'bad name', not a service name",
        ),
        (
            deployment("cart", annotations={"opsmind.io/depends-on": "cart"}),
            "shop/cart: opsmind.io/depends-on names 'cart', itself",
        ),
    ],
)
def test_what_a_deployment_says(d: dict[str, Any], expected: DiscoveredService | str | None) -> None:
    found = from_deployment(d)
    if isinstance(expected, str):
        assert isinstance(found, str) and found.startswith(expected)
    else:
        assert found == expected


def test_a_name_in_two_namespaces_is_taken_by_the_first() -> None:
    found = discover([deployment("web", "a"), deployment("web", "b"), deployment("db", "b")])
    assert [(s.name, s.namespace) for s in found.services] == [("web", "a"), ("db", "b")]
    assert found.skipped == ["b/web: the name is taken by namespace a's"]


def _resource(kmock: Any) -> Any:
    return kmock.resource("apps", "v1", "deployments")


def _discovery(kmock: Any, namespaces: list[str]) -> KubernetesDiscovery:
    api = client.ApiClient(client.Configuration(host=str(kmock.url).rstrip("/")))
    return KubernetesDiscovery(api, namespaces, request_timeout_s=5)


async def test_lists_the_deployments_of_every_watched_namespace(kmock: Any) -> None:
    kmock.objects[_resource(kmock), "shop", "web"] = deployment("web", pod_annotations=SCRAPED)
    kmock.objects[_resource(kmock), "ml", "ranker"] = deployment("ranker", "ml", {"opsmind.io/type": "ml"})
    kmock.objects[_resource(kmock), "other", "skip"] = deployment("skip", "other")
    found = await asyncio.to_thread(_discovery(kmock, ["shop", "ml"]).discover)
    assert sorted((s.name, s.namespace, s.service_type) for s in found.services) == [
        ("ranker", "ml", "ml"),
        ("web", "shop", None),
    ]


async def test_the_engine_keeps_its_registry_in_line_with_the_cluster(kmock: Any, tmp_path: Path) -> None:
    kmock.objects[_resource(kmock), "shop", "web"] = deployment("web", pod_annotations=SCRAPED)
    kmock.objects[_resource(kmock), "shop", "ranker"] = deployment("ranker", labels={"opsmind.io/type": "ml"})
    kmock.objects[_resource(kmock), "shop", "ledger"] = deployment("ledger")
    settings = Settings.model_validate(
        {
            "storage": {"path": str(tmp_path / "o.db")},
            "notify": {"log": False},
            "discovery": {"kubernetes": {}},
        }
    )
    engine = Engine(settings, kubernetes_discovery=_discovery(kmock, ["shop"]))
    person = ServiceRegistration(id="ledger", at=1.0, service="ledger", service_type="database", by="ana")
    await engine.registry.register(person, "the ledger is ours")
    changed, removed = await engine.discover_once()
    assert sorted(changed) == ["ranker", "web"] and removed == []  # ledger: registered by a person
    regs = engine.registry.registered()
    assert (
        regs["web"].metrics_url == "http://web.shop.svc:9102/stats"
        and regs["web"].by == DISCOVERED_BY_KUBERNETES
    )
    assert regs["ranker"].service_type == "ml" and regs["ledger"].by == "ana"
    assert "http://web.shop.svc:9102/stats" in [str(t.url) for t in engine.scraper.targets]
    assert await engine.discover_once() == ([], [])  # nothing changed: nothing written
    assert engine.topology.graph is None  # no Deployment says what it calls
    kmock.objects[_resource(kmock), "shop", "ranker"] = deployment(
        "ranker", labels={"opsmind.io/type": "worker"}, annotations={"opsmind.io/depends-on": "ledger"}
    )
    del kmock.objects[_resource(kmock), "shop", "web"]
    del kmock.objects[_resource(kmock), "shop", "ledger"]
    assert await engine.discover_once() == (["ranker"], ["web"])
    regs = engine.registry.registered()
    assert sorted(regs) == ["ledger", "ranker"] and regs["ranker"].service_type == "worker"
    assert regs["ranker"].depends_on == ("ledger",)
    # The annotation is an edge of the graph every stage reads.
    assert engine.topology.edges == {"ranker": ("ledger",)}
    assert engine.incidents is not None and engine.incidents.correlator.topology is engine.topology
    assert engine.scraper.targets == []  # web's scrape stopped
    verbs = [e.verb for e in engine.store.find(AuditEntry, service="web", limit=10)]
    assert verbs == ["service_deregister", "service_register"]
    engine.store.close()
