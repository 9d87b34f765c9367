"""The dashboard's static page and the topology it draws, over real HTTP (api.routers.ui)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from opsmind.api.routers import ui
from tests.conftest import start_server


@pytest.fixture
def static(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "static"
    folder.mkdir()
    monkeypatch.setattr(ui, "STATIC_DIR", folder)
    return folder


def test_without_a_build_the_page_says_to_run_make_web(static: Path, server: Any) -> None:
    with server.client() as c:
        for path in ("/", "/ui/main.js"):
            r = c.get(path)
            assert r.status_code == 503, r.text
            assert "make web" in r.json()["detail"]
        assert c.get("/api/v1/health").status_code == 200  # the API works without the page


def test_the_built_page_and_its_assets_are_served(static: Path, server: Any, tmp_path: Path) -> None:
    (static / "index.html").write_text("<!doctype html><title>OpsMind</title>")
    (static / "main.js").write_text("export const x = 1;")
    (static / "app.css").write_text("body {}")
    (static / "notes.py").write_text("secret = 1")
    (tmp_path / "outside.js").write_text("leak")
    with server.client() as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "OpsMind" in page.text
        js = c.get("/ui/main.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert c.get("/ui/app.css").headers["content-type"].startswith("text/css")
        assert c.head("/ui/main.js").status_code == 200
        assert c.get("/ui/missing.js").status_code == 404
        assert c.get("/ui/notes.py").status_code == 404  # only page files, whatever lies in the folder
        assert c.get("/ui/..%2Foutside.js").status_code == 404


def test_topology_is_the_configured_graph_plus_services_seen(make_settings: Any) -> None:
    settings = make_settings(incidents={"topology": {"gateway": ["auth", "orders"], "orders": ["db"]}})
    running, srv, thread = start_server(settings)
    try:
        with running.client() as c:
            now = time.time()
            body = {
                "series": [
                    {
                        "metric": "request_rate",
                        "labels": {"service": "search"},
                        "timestamps": [now],
                        "values": [1],
                    }
                ]
            }
            assert c.post("/api/v1/ingest", json=body).status_code == 200
            topo = c.get("/api/v1/topology").json()
            # A registered service's dependencies join the map while it is registered.
            reg = {"by": "ana", "depends_on": ["orders", "cache", "orders"]}
            assert c.put("/api/v1/services/search", json=reg).status_code == 201
            registered = c.get("/api/v1/topology").json()
            assert c.delete("/api/v1/services/search", params={"by": "ana"}).status_code == 200
            after = c.get("/api/v1/topology").json()
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
    declared = ["incidents.topology"]
    assert topo["services"] == ["auth", "db", "gateway", "orders", "search"]
    assert topo["edges"] == [
        {"from": "gateway", "to": "auth", "source": declared},
        {"from": "gateway", "to": "orders", "source": declared},
        {"from": "orders", "to": "db", "source": declared},
    ]
    assert topo["source"] == "incidents.topology"
    assert registered["services"] == ["auth", "cache", "db", "gateway", "orders", "search"]
    assert registered["edges"][-2:] == [
        {"from": "search", "to": "cache", "source": ["registration"]},
        {"from": "search", "to": "orders", "source": ["registration"]},
    ]
    assert registered["source"] == "incidents.topology + registration"
    assert after == topo
