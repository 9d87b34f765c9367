"""The service registry over real HTTP: a service registered with its metrics URL (a real exposition
served by ``http.server`` on loopback) is scraped at once, listed with its registration and scrape
status, kept across a restart, and no longer scraped once deregistered; bad registrations are refused
with the reason and store nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opsmind.types import AuditEntry
from tests.conftest import RunningServer, start_server

EXPOSITION = b"""# TYPE model_accuracy gauge
model_accuracy 0.91
# TYPE requests_total counter
requests_total 1234
"""


class Exporter:
    """A metrics endpoint that counts its scrapes."""

    def __init__(self) -> None:
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(EXPOSITION)))
                self.end_headers()
                self.wfile.write(EXPOSITION)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.server.shutdown()
    e.server.server_close()


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def register(server: RunningServer, name: str, **body: Any) -> Any:
    with server.client() as c:
        return c.put(f"/api/v1/services/{name}", json={"by": "ana", **body})


def service(server: RunningServer, name: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.get(f"/api/v1/services/{name}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_registered_service_is_scraped_listed_and_stops_being_scraped_once_removed(
    server: RunningServer, exporter: Exporter
) -> None:
    r = register(
        server,
        "recommender",
        type="ml",
        owner="ranking-team",
        metrics_url=exporter.url,
        scrape_interval_s=1,
        labels={"env": "prod"},
        why="new model service",
    )
    assert r.status_code == 201, r.text
    assert r.json()["registration"]["owner"] == "ranking-team"
    wait_until(lambda: service(server, "recommender")["status"] == "ok")
    s = service(server, "recommender")
    assert s["metrics"] == ["model_accuracy", "requests_total", "up"]
    assert s["scrape"]["up"] is True and s["scrape"]["series"] == 2
    assert s["registration"] == {
        "type": "ml",
        "owner": "ranking-team",
        "metrics_url": exporter.url,
        "scrape_interval_s": 1.0,
        "labels": {"env": "prod"},
        "depends_on": [],
        "by": "ana",
        "at": s["registration"]["at"],
    }
    with server.client() as c:
        keys = [x["key"] for x in c.get("/api/v1/series", params={"match": "service=recommender"}).json()]
    assert 'model_accuracy{env="prod",instance="127.0.0.1:' in keys[0] and 'job="recommender"' in keys[0]
    changed = register(
        server, "recommender", owner="search-team", metrics_url=exporter.url, labels={"env": "prod"}
    )
    assert changed.status_code == 200
    with server.client() as c:
        r = c.delete("/api/v1/services/recommender", params={"by": "ana", "why": "retired"})
    assert r.status_code == 200 and r.json()["owner"] == "search-team"
    time.sleep(0.3)  # an in-flight scrape may still land
    after = exporter.scrapes
    time.sleep(2.5)
    assert exporter.scrapes == after  # no longer scraped
    s = service(server, "recommender")  # still listed: its series stay
    assert s["registration"] is None and s["series"] == 3
    verbs = [e.verb for e in server.engine.store.find(AuditEntry, service="recommender", limit=10)]
    assert verbs == ["service_deregister", "service_update", "service_register"]
    with server.client() as c:
        assert c.delete("/api/v1/services/recommender", params={"by": "ana"}).status_code == 404


def test_a_registration_without_metrics_is_listed_without_data(server: RunningServer) -> None:
    assert register(server, "ledger-db", type="database", owner="payments").status_code == 201
    s = service(server, "ledger-db")
    assert s["status"] == "no data yet" and s["series"] == 0 and s["scrape"] is None
    with server.client() as c:
        names = [x["name"] for x in c.get("/api/v1/services").json()]
        mapped = c.get("/api/v1/topology").json()["services"]
    assert "ledger-db" in names and "ledger-db" in mapped  # on the service map before any data


def test_registrations_survive_a_restart(make_settings: Any, exporter: Exporter) -> None:
    first, srv, thread = start_server(make_settings())
    try:
        r = register(
            first, "recommender", metrics_url=exporter.url, scrape_interval_s=1, depends_on=["feature-store"]
        )
        assert r.status_code == 201, r.text
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
    before = exporter.scrapes
    again, srv, thread = start_server(make_settings())  # the same database file
    try:
        wait_until(lambda: exporter.scrapes > before + 1)
        assert service(again, "recommender")["registration"]["metrics_url"] == exporter.url
        # What it calls is part of the call graph again from the start.
        assert again.engine.topology.edges == {"recommender": ("feature-store",)}
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


@pytest.mark.parametrize(
    ("name", "body", "why"),
    [
        ("bad name", {}, "service name 'bad name': 1-63 letters"),
        ("-x", {}, "service name '-x'"),
        ("x", {"labels": {"service": "y"}}, "labels.service: set by OpsMind"),
        ("x", {"labels": {"1x": "y"}}, "labels.1x: invalid label name"),
        ("x", {"metrics_url": "ftp://host/metrics"}, "metrics_url"),
        ("x", {"scrape_interval_s": 0}, "scrape_interval_s"),
        ("x", {"type": "mainframe"}, "type"),
        ("x", {"colour": "blue"}, "colour"),
        ("x", {"depends_on": ["x"]}, "depends_on[0]: a service does not depend on itself"),
        ("x", {"depends_on": ["db", " db"]}, "depends_on[1]: ' db' is not a service name"),
        ("x", {"depends_on": ["a\nb"]}, "depends_on[0]"),
        ("x", {"depends_on": [f"s{i}" for i in range(65)]}, "depends_on"),
    ],
)
def test_a_bad_registration_is_refused_with_the_reason_and_stores_nothing(
    server: RunningServer, name: str, body: dict[str, Any], why: str
) -> None:
    r = register(server, name, **body)
    assert r.status_code == 422 and why in r.text, r.text
    with server.client() as c:
        assert c.get(f"/api/v1/services/{name}").status_code == 404


def test_who_registers_is_required_without_access_control(server: RunningServer) -> None:
    with server.client() as c:
        r = c.put("/api/v1/services/x", json={"type": "api"})
    assert r.status_code == 422 and "by: required while api.auth is disabled" in r.text


def test_a_configured_scrape_target_cannot_be_registered_again(
    make_settings: Any, exporter: Exporter
) -> None:
    running, srv, thread = start_server(make_settings(scrape=[{"url": exporter.url}]))
    try:
        r = register(running, "dup", metrics_url=exporter.url)
        assert r.status_code == 422 and "already scraped as a configured target" in r.text
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def test_a_registered_type_is_the_kind_the_healer_observes(make_settings: Any) -> None:
    """heal.inventory declares kinds; a registered service it does not declare takes its registered type."""
    settings = make_settings(heal={"enabled": True, "inventory": {"orders-db": {"kind": "cache"}}})
    running, srv, thread = start_server(settings)
    try:
        assert register(running, "orders-db", type="database").status_code == 201
        assert register(running, "features", type="ml").status_code == 201
        assert register(running, "plain").status_code == 201
        healing = running.engine.healing
        assert healing is not None and healing.registered_kinds is not None
        assert healing.registered_kinds() == {"orders-db": "database", "features": "ml"}
        fleet = healing.fleet_inventory()
        assert fleet.kind("orders-db") == "cache"  # the configuration wins where both say
        assert fleet.kind("features") == "ml" and fleet.kind("plain") == "api"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)


def test_two_services_cannot_share_a_metrics_url(server: RunningServer, exporter: Exporter) -> None:
    # The scraper keeps one loop per URL: the second registration took the first one's scrape over, and
    # re-registering either without the URL stopped the other's.
    assert register(server, "first", metrics_url=exporter.url).status_code == 201
    r = register(server, "second", metrics_url=exporter.url)
    assert r.status_code == 422 and "already scraped for service 'first'" in r.text, r.text
    assert register(server, "first", metrics_url=exporter.url, owner="team-a").status_code == 200
    with server.client() as c:
        assert c.get("/api/v1/services/second").status_code == 404


def test_concurrent_registrations_and_removals_leave_the_scrapes_matching_the_registry(
    server: RunningServer, exporter: Exporter
) -> None:
    # PUT and DELETE of one service raced: some PUTs answered 500, and a moved URL went on being scraped
    # after its service was removed.
    async def race() -> list[int]:
        import httpx

        async with httpx.AsyncClient(base_url=server.url, timeout=20) as c:
            calls = []
            for i in range(12):
                url = f"{exporter.url}?v={i % 3}"
                calls.append(c.put("/api/v1/services/racer", json={"by": "ana", "metrics_url": url}))
                calls.append(c.request("DELETE", "/api/v1/services/racer", params={"by": "bob"}))
            return [r.status_code for r in await asyncio.gather(*calls)]

    statuses = asyncio.run(race())
    assert set(statuses) <= {200, 201, 404, 409}, statuses
    registry = server.engine.registry
    registered = registry.registered()
    scraped = {str(t.url) for t in registry.scraper.targets}
    expected = {r.metrics_url for r in registered.values() if r.metrics_url is not None}
    assert scraped == expected, (scraped, expected)
