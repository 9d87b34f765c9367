"""The dashboard in a real browser against a real demo: the overview's service map, a fault injected in the
simulator showing up live as an incident, a viewer refused the approval an operator then gives (and the
audit page showing it live), errors with the server's reason, layouts at 1280x800 and 2560x1440, and charts
of 10,000 points.

One demo runs for the module (``conftest.demo``); the tests read each other's world, not each other's
results, so each can run alone."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import HTTP_TIMEOUT_S, OPERATOR, USERS, VIEWER, Demo

pytestmark = [pytest.mark.slow, pytest.mark.ui]

PHONE = {"width": 390, "height": 844}
SMALL = {"width": 1280, "height": 800}
LARGE = {"width": 2560, "height": 1440}
LIVE_S = 15_000  # ms a live update may take to reach the page
# Every other expectation waits up to 15 s too (Playwright's default is 5 s): on 2 shared cores the demo
# catching up its first hour can keep the page's REST calls waiting that long.
expect.set_options(timeout=15_000)
PROPOSAL_TIMEOUT_S = 150.0

# Draws 4 charts of two 10,000-point series each, then appends 50 live points one by one.
BENCHMARK = """async () => {
    const m = await import('/ui/chart.js');
    const box = document.createElement('div');
    box.style.width = '1200px';
    document.body.append(box);
    const n = 10000, xs = [], a = [], b = [];
    for (let i = 0; i < n; i++) {
        xs.push(1.7e9 + 5 * i);
        a.push(Math.sin(i / 50));
        b.push(Math.cos(i / 70));
    }
    const t0 = performance.now();
    const charts = [];
    for (let k = 0; k < 4; k++) {
        const series = [{label: 'a'}, {label: 'b'}];
        const c = new m.Chart(box, {id: `bench-${k}`, title: 'bench', series});
        c.setSeries(0, xs, a);
        c.setSeries(1, xs, b);
        c.setMarkers([{t: xs[5000], v: a[5000]}]);
        c.flush();
        charts.push(c);
    }
    const drawn = performance.now() - t0;
    const t1 = performance.now();
    for (let j = 1; j <= 50; j++) {
        charts[0].append(0, [[xs[n - 1] + 5 * j, 0.5]]);
        charts[0].flush();
    }
    const append = (performance.now() - t1) / 50;
    const nodes = box.querySelectorAll('*').length;
    const points = charts.map(c => c.points());
    charts.forEach(c => c.destroy());
    box.remove();
    return {drawn, append, nodes, points};
}"""


PAGE_ERRORS: list[str] = []


@pytest.fixture(autouse=True)
def no_script_errors() -> Iterator[None]:
    """Every test also checks that the page threw nothing uncaught."""
    PAGE_ERRORS.clear()
    yield
    assert not PAGE_ERRORS, PAGE_ERRORS


def sign_in(browser: Any, demo: Demo, user: str, viewport: dict[str, int] = SMALL) -> Page:
    """A fresh browser context signed in through the login page; lands on the overview."""
    context = browser.new_context(viewport=viewport)
    page: Page = context.new_page()
    page.on("pageerror", lambda exc: PAGE_ERRORS.append(f"{page.url}: {exc}"))
    page.goto(f"{demo.url}/#/overview")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(USERS[user]["password"])
    page.get_by_test_id("login-submit").click()
    # The first sign-in may meet the demo still catching up its hour of history: give it time.
    expect(page.get_by_test_id("whoami")).to_have_text(f"{user} ({USERS[user]['role']})", timeout=30_000)
    return page


@pytest.fixture
def operator_page(browser: Any, demo: Demo) -> Iterator[Page]:
    page = sign_in(browser, demo, OPERATOR)
    yield page
    page.context.close()


@pytest.fixture
def viewer_page(browser: Any, demo: Demo) -> Iterator[Page]:
    page = sign_in(browser, demo, VIEWER)
    yield page
    page.context.close()


def wait_live(page: Page) -> None:
    expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=LIVE_S)


def wait_for_proposal(demo: Demo, timeout_s: float = PROPOSAL_TIMEOUT_S) -> dict[str, Any]:
    """A remediation awaiting approval (the demo's healer proposes medium-risk runbooks)."""
    deadline = time.monotonic() + timeout_s
    with demo.client() as c:
        while time.monotonic() < deadline:
            r = c.get("/api/v1/remediations", params={"state": "proposed"})
            if r.status_code == 503:
                pytest.fail(f"self-healing is disabled in the demo: {r.json()['detail']}")
            assert r.status_code == 200, r.text
            found = [x for x in r.json() if x.get("incident_id")]
            if found:
                return dict(found[0])
            time.sleep(2)
    pytest.fail(f"no remediation was proposed within {timeout_s:.0f} s:\n{demo.tail(30)}")


def test_the_overview_shows_the_service_map_live(operator_page: Page, demo: Demo) -> None:
    page = operator_page
    services = httpx.get(
        f"{demo.url}/api/v1/topology",
        headers={"Authorization": f"Bearer {demo.token(OPERATOR)}"},
        timeout=HTTP_TIMEOUT_S,
    ).json()["services"]
    assert len(services) >= 5, services
    expect(page.get_by_test_id("service-map")).to_be_visible()
    for name in services:
        node = page.get_by_test_id(f"service-node-{name}")
        expect(node).to_be_visible()
        # Health is told in words (and by shape), not by colour alone.
        expect(node).to_have_attribute("aria-label", re.compile(rf"^{re.escape(name)}: health (\d+|\?), \w+"))
    expect(page.get_by_test_id(f"service-node-{services[0]}")).to_contain_text("/100")
    wait_live(page)
    page.get_by_test_id(f"service-node-{services[0]}").click()
    expect(page).to_have_url(f"{demo.url}/#/service/{services[0]}")
    expect(page.locator("[data-testid^='chart-']").first).to_be_visible(timeout=LIVE_S)


def test_an_injected_fault_shows_up_live_as_an_incident(operator_page: Page, demo: Demo) -> None:
    page = operator_page
    page.goto(f"{demo.url}/#/incidents")
    expect(page.get_by_test_id("incident-list")).to_be_visible()
    wait_live(page)
    page.evaluate("window.__sameDocument = true")
    with demo.client() as c:
        before = {i["id"] for i in c.get("/api/v1/incidents", params={"limit": 1000}).json()}
        # A bad fault is refused with its reason, not pydantic's dump.
        bad = c.post("/api/v1/demo/faults", json={"kind": "bad_deployment"})
        assert bad.status_code == 422 and bad.json()["detail"] == "bad_deployment needs a service", bad.text
        endless = {"kind": "latency_injection", "service": "auth", "duration_s": 1e300}
        assert c.post("/api/v1/demo/faults", json=endless).status_code == 422  # a fault cannot be called off
        r = c.post(
            "/api/v1/demo/faults",
            json={"kind": "latency_injection", "service": "auth", "params": {"delay_ms": 400}},
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 120
        new: list[dict[str, Any]] = []
        while not new and time.monotonic() < deadline:
            time.sleep(2)
            new = [
                i
                for i in c.get("/api/v1/incidents", params={"limit": 1000}).json()
                if i["id"] not in before
                and i["type"] == "anomaly"
                and "auth" in {i["service"], *i["services"]}
            ]
    assert new, f"the fault on auth opened no incident within 120 s:\n{demo.tail(30)}"
    row = page.get_by_test_id(f"incident-row-{new[0]['id']}")
    expect(row).to_be_visible(timeout=LIVE_S)
    expect(row).to_contain_text("auth")
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def test_an_unknown_incident_shows_the_servers_reason(operator_page: Page, demo: Demo) -> None:
    page = operator_page
    page.goto(f"{demo.url}/#/incident/no-such-incident")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("404")
    expect(banner).to_contain_text("no incident with id 'no-such-incident'")


def test_a_viewer_cannot_approve(viewer_page: Page, demo: Demo) -> None:
    page = viewer_page
    rem = wait_for_proposal(demo)
    page.goto(f"{demo.url}/#/incident/{rem['incident_id']}")
    approve = page.get_by_test_id(f"approve-{rem['id']}")
    expect(approve).to_be_visible(timeout=LIVE_S)
    expect(approve).to_be_disabled()
    expect(approve).to_have_attribute("title", "needs the operator role (you are viewer)")
    expect(page.get_by_test_id(f"reject-{rem['id']}")).to_be_disabled()
    page.goto(f"{demo.url}/#/overview")
    expect(page.get_by_test_id("automation-mode")).to_be_disabled()
    # The server refuses it anyway.
    with demo.client(VIEWER) as c:
        r = c.post(f"/api/v1/remediations/{rem['id']}/approve", json={"who": VIEWER, "why": "try"})
    assert r.status_code == 403, r.text
    assert "operator" in r.json()["detail"]
    with demo.client() as c:
        assert c.get(f"/api/v1/remediations/{rem['id']}").json()["state"] == "proposed"


def test_an_operator_approves_and_the_audit_page_shows_it(browser: Any, demo: Demo) -> None:
    rem = wait_for_proposal(demo)
    audit = sign_in(browser, demo, OPERATOR)
    incident = sign_in(browser, demo, OPERATOR)  # another tab: the token lives in sessionStorage, per tab
    try:
        audit.goto(f"{demo.url}/#/audit")
        expect(audit.get_by_test_id("audit-row").first).to_be_visible()
        wait_live(audit)
        incident.goto(f"{demo.url}/#/incident/{rem['incident_id']}")
        approve = incident.get_by_test_id(f"approve-{rem['id']}")
        expect(approve).to_be_enabled(timeout=LIVE_S)
        incident.get_by_test_id("action-reason").fill("ui test: looks right")
        approve.click()
        expect(approve).to_have_count(0, timeout=LIVE_S)
        expect(incident.get_by_test_id("error-banner")).to_be_hidden()
        with demo.client() as c:
            state = c.get(f"/api/v1/remediations/{rem['id']}").json()["state"]
        assert state != "proposed", state
        # The audit page, open all along, shows the approval without a reload: who, what, why.
        row = audit.locator(f"[data-testid='audit-row'][data-subject='{rem['id']}'][data-verb^='approv']")
        expect(row.first).to_be_visible(timeout=LIVE_S)
        expect(row.first).to_contain_text(OPERATOR)
        expect(row.first).to_contain_text("ui test: looks right")
    finally:
        audit.context.close()
        incident.context.close()


@pytest.mark.parametrize("viewport", [PHONE, SMALL, LARGE], ids=["390x844", "1280x800", "2560x1440"])
def test_pages_fit_the_screen(browser: Any, demo: Demo, viewport: dict[str, int]) -> None:
    page = sign_in(browser, demo, OPERATOR, viewport)
    try:
        for route in ("overview", "incidents", "scaling", "audit", "service/gateway"):
            page.goto(f"{demo.url}/#/{route}")
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"#/{route} scrolls sideways by {overflow}px at {viewport}"
            expect(page.get_by_test_id("error-banner")).to_be_hidden()
        page.goto(f"{demo.url}/#/overview")
        expect(page.get_by_test_id("service-map")).to_be_visible()
        box = None
        for _ in range(20):  # the map is redrawn as health scores arrive: measure one that stays
            box = page.get_by_test_id("service-map").bounding_box()
            if box is not None:
                break
            time.sleep(0.1)
        assert box is not None and box["y"] < viewport["height"] / 2, box
        assert box["width"] > min(400, viewport["width"] - 60), box
    finally:
        page.context.close()


def test_charts_draw_10000_points_per_series_fast(operator_page: Page) -> None:
    """Four charts of two 10,000-point series each draw without a DOM node per point, in tens of
    milliseconds (the bound leaves room for a loaded CI machine), and a live point is appended in a few."""
    result = operator_page.evaluate(BENCHMARK)
    assert result["points"] == [20050, 20000, 20000, 20000], result
    assert result["drawn"] < 2000, result
    assert result["append"] < 100, result
    assert result["nodes"] < 400, result


def an_open_incident(demo: Demo, statuses: tuple[str, ...] = ("open",)) -> dict[str, Any]:
    """An incident in one of ``statuses`` to act on: the demo's own faults open them (fault-after 1 s,
    nothing approves their remediations), whatever the tests before this one did."""
    deadline = time.monotonic() + 120
    with demo.client() as c:
        while not (found := [i for i in c.get("/api/v1/incidents").json() if i["status"] in statuses]):
            assert time.monotonic() < deadline, f"no {statuses} incident within 120 s:\n{demo.tail(30)}"
            time.sleep(2)
    return dict(found[0])


def test_an_operators_overrides_through_the_page(operator_page: Page, demo: Demo) -> None:
    """Pause and resume healing on a service, pin and release a scaled service, acknowledge an incident,
    mark it noise and silence it: each button reaches its route, and the page shows the new state."""
    page = operator_page
    banner = page.get_by_test_id("error-banner")
    page.goto(f"{demo.url}/#/service/redis")
    pause = page.get_by_test_id("pause-healing")
    expect(pause).to_have_text("Pause healing", timeout=LIVE_S)
    pause.click()
    expect(pause).to_have_text("Resume healing")
    with demo.client() as c:
        assert [p["service"] for p in c.get("/api/v1/automation/services").json()] == ["redis"]
    pause.click()
    expect(pause).to_have_text("Pause healing")
    expect(banner).to_be_hidden()

    page.goto(f"{demo.url}/#/scaling")
    page.get_by_test_id("pin-gateway").click()
    expect(page.get_by_test_id("scaling-gateway")).to_contain_text("Pinned to")
    with demo.client() as c:
        pinned = {s["service"]: s["override"] for s in c.get("/api/v1/scaling").json()}["gateway"]
    assert pinned is not None and pinned["by"] == OPERATOR and pinned["replicas"] is not None, pinned
    page.get_by_test_id("release-gateway").click()
    expect(page.get_by_test_id("release-gateway")).to_have_count(0)
    expect(banner).to_be_hidden()
    page.get_by_test_id("bounds-gateway").click()  # min/max: automation keeps deciding within them
    expect(page.get_by_test_id("scaling-gateway")).to_contain_text("Automatic within")
    with demo.client() as c:
        bounded = {s["service"]: s["override"] for s in c.get("/api/v1/scaling").json()}["gateway"]
    assert bounded is not None and bounded["kind"] == "bounds" and bounded["by"] == OPERATOR, bounded
    page.get_by_test_id("release-gateway").click()
    expect(page.get_by_test_id("release-gateway")).to_have_count(0)
    expect(banner).to_be_hidden()

    incident = an_open_incident(demo)
    page.goto(f"{demo.url}/#/incident/{incident['id']}")
    page.get_by_test_id("status-acknowledged").click()
    expect(page.get_by_test_id("incident-head")).to_contain_text("acknowledged")
    page.get_by_test_id("feedback-noise").click()
    expect(page.get_by_text(f"Marked noise by {OPERATOR}")).to_be_visible()
    page.get_by_test_id("silence").click()
    expect(page.get_by_text(f"Silenced notifications for service={incident['service']}")).to_be_visible()
    expect(banner).to_be_hidden()
    with demo.client() as c:
        assert c.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "acknowledged"
        silences = c.get("/api/v1/silences", params={"state": "active"}).json()
    assert any(s["createdBy"] == OPERATOR for s in silences), silences
    mine = next(s for s in silences if s["createdBy"] == OPERATOR)
    page.goto(f"{demo.url}/#/incidents")  # the silence is listed there and can be expired, with a reason
    page.get_by_test_id("expire-reason").fill("the deploy window is over")
    page.get_by_test_id(f"expire-{mine['id']}").click()
    expect(page.get_by_test_id(f"silence-{mine['id']}")).to_have_count(0)
    expect(banner).to_be_hidden()
    with demo.client() as c:
        assert c.get("/api/v1/silences", params={"state": "expired"}).json()[0]["id"] == mine["id"]
        audit = c.get("/api/v1/audit", params={"limit": 10_000}).json()
    expiries = [a for a in audit if a["verb"] == "expire_silence" and a["subject"] == mine["id"]]
    assert [a["detail"]["reason"] for a in expiries] == ["the deploy window is over"], expiries


def test_what_an_operator_types_survives_live_updates(operator_page: Page, demo: Demo) -> None:
    """A live update redraws a card or the incident's actions; what the operator was entering stays (a
    redraw used to put back the decided replicas, or "1 h" for a chosen "24 h", just before the click)."""
    page = operator_page
    page.goto(f"{demo.url}/#/scaling")
    card = page.get_by_test_id("scaling-gateway")
    typed = card.get_by_label("replicas to pin")
    typed.fill("7")
    with demo.client() as c:  # someone else's pin: a decision event redraws the card
        r = c.post("/api/v1/scaling/gateway/override", json={"replicas": 5, "reason": "load test"})
        assert r.status_code == 200, r.text
        expect(card).to_contain_text("Pinned to 5", timeout=LIVE_S)
        expect(typed).to_have_value("7")
        assert c.request("DELETE", "/api/v1/scaling/gateway/override").status_code == 200
    typed.fill("")
    card.get_by_test_id("pin-gateway").click()  # an empty field is not a pin to 0
    expect(page.get_by_test_id("error-banner")).to_contain_text("enter a whole number of replicas")

    incident = an_open_incident(demo, ("open", "acknowledged"))  # the test before may have acknowledged it
    with demo.client() as c:
        page.goto(f"{demo.url}/#/incident/{incident['id']}")
        page.get_by_test_id("silence-for").select_option(label="24 h")
        move = {"status": "mitigating", "reason": "rolling back"}  # someone else's move redraws the actions
        assert c.post(f"/api/v1/incidents/{incident['id']}/status", json=move).status_code == 200
        expect(page.get_by_test_id("incident-head")).to_contain_text("mitigating", timeout=LIVE_S)
    expect(page.get_by_test_id("silence-for")).to_have_value(str(86400))


def test_the_service_page_says_how_its_latency_warnings_fared(operator_page: Page, demo: Demo) -> None:
    """The traffic chart's forecast note carries the service's warning record, as the API reports it."""
    deadline = time.monotonic() + 120
    record = None
    while record is None and time.monotonic() < deadline:  # the page reads the forecast once, at load
        with demo.client() as c:
            view = c.get("/api/v1/forecasts/personalization")
        if view.status_code == 200 and view.json()["forecast"] is not None:
            record = view.json()["warning_track_record"]
        else:
            time.sleep(2)
    assert record is not None, f"no forecast with a warning record within 120 s:\n{demo.tail(30)}"
    page = operator_page
    page.goto(f"{demo.url}/#/service/personalization")
    note = page.locator(".chart-note", has_text="latency warnings so far:")
    expect(note).to_contain_text(record["summary"], timeout=LIVE_S)


def test_a_registered_service_shows_its_registration(operator_page: Page, demo: Demo) -> None:
    """An admin registers a service over the API; its page says what the registry knows before any data."""
    with demo.client("admin") as c:
        body = {"type": "database", "owner": "payments", "why": "ui test", "depends_on": ["postgres"]}
        r = c.put("/api/v1/services/ledger-db", json=body)
    assert r.status_code in (200, 201), r.text
    page = operator_page
    page.goto(f"{demo.url}/#/service/ledger-db")
    expect(page.get_by_test_id("registration")).to_contain_text("database; owner payments", timeout=LIVE_S)
    expect(page.get_by_text("Metrics: no metrics URL.")).to_be_visible()
    expect(page.get_by_test_id("depends-on")).to_have_text("Calls: postgres")
    page.get_by_test_id("depends-on").get_by_role("link", name="postgres").click()
    expect(page).to_have_url(f"{demo.url}/#/service/postgres")
    page.goto(f"{demo.url}/#/service/personalization")
    expect(page.get_by_text("Not registered: known from the service label of its series.")).to_be_visible(
        timeout=LIVE_S
    )


def test_a_remediation_that_sent_nothing_is_not_shown_as_failed(operator_page: Page) -> None:
    """A precheck that said no ends the remediation as failed with nothing sent: the pages say so."""
    shown = operator_page.evaluate(
        """async () => {
        const w = await import('/ui/widgets.js');
        const text = (r) => w.remediationBadge(r).textContent;
        return [
            text({state: 'failed', finished: true, sent_keys: []}),
            text({state: 'failed', finished: true, sent_keys: ['rem-1/0']}),
            text({state: 'verifying', finished: false, sent_keys: ['rem-1/0']}),
        ];
    }"""
    )
    assert shown == ["nothing sent", "failed", "verifying"]
