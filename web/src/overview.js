// #/overview: the service map coloured by health, open incidents by priority, the automation switch and
// SLO error budgets. Loaded once over REST, then kept current by the live connection.

import { ApiError, api, enc, getOptional, session } from "./api.js";
import { fill, fmtAgo, fmtNum, fmtPct, h, section, table } from "./dom.js";
import { href } from "./router.js";
import { legend, serviceMap } from "./servicemap.js";
import { RISKS, attempt, priorityBadge, reasonInput, reasonOf, showError, stateBadge } from "./widgets.js";

const SLO_REFRESH_MS = 30_000;
const ACTIVE = new Set(["open", "acknowledged", "mitigating"]);
const window_ = (secs) => (secs >= 86400 ? `${secs / 86400}d` : secs >= 3600 ? `${secs / 3600}h` : `${secs / 60}m`);

export function mount(root, { live }) {
  const state = { topo: { services: [], edges: [] }, health: new Map(), incidents: new Map(), automation: null };
  const mapBox = h("div", { class: "map-box" }, "loading the service map…");
  const mapNote = h("p", { class: "muted" });
  const incBox = h("div", {}, "loading…");
  const autoBox = h("div", {}, "loading…");
  const sloBox = h("div", {}, "loading…");
  fill(
    root,
    h(
      "div",
      { class: "overview" },
      section("Service map", legend(), mapBox, mapNote),
      h("div", { class: "side" }, section("Automation", autoBox), section("Open incidents", incBox)),
      section("SLOs and error budgets", sloBox),
    ),
  );

  const openBy = () => {
    const m = new Map();
    for (const inc of state.incidents.values()) {
      if (!ACTIVE.has(inc.status)) continue;
      for (const svc of new Set([inc.service, ...(inc.services || [])].filter(Boolean)))
        m.set(svc, (m.get(svc) || 0) + 1);
    }
    return m;
  };

  const drawMap = () => {
    const services = [...new Set([...state.topo.services, ...state.health.keys()])].sort();
    // Redrawn on every health change: keep the keyboard focus on the service that had it.
    const focused = mapBox.contains(document.activeElement) ? document.activeElement.getAttribute("data-testid") : null;
    fill(mapBox, serviceMap({ services, edges: state.topo.edges }, state.health, openBy()));
    if (focused) mapBox.querySelector(`[data-testid="${CSS.escape(focused)}"]`)?.focus();
    mapNote.textContent = state.topo.edges.length
      ? `${state.topo.edges.length} calls from ${state.topo.source}; !n: open incidents. Click a service for its signals.`
      : "No dependency graph is configured (incidents.topology): services are laid out in a grid. !n: open incidents. Click a service for its signals.";
  };

  const drawIncidents = () => {
    const rows = [...state.incidents.values()].filter((i) => ACTIVE.has(i.status)).sort((a, b) => b.priority - a.priority);
    fill(
      incBox,
      table(
        [
          { title: "Priority", cell: (i) => priorityBadge(i.priority) },
          { title: "Incident", cell: (i) => h("a", { href: href("incident", i.id) }, i.title) },
          { title: "Service", cell: (i) => i.service || "-" },
          { title: "State", cell: (i) => stateBadge(i.status) },
          { title: "Opened", cell: (i) => fmtAgo(i.opened_at) },
        ],
        rows,
        { rowAttrs: (i) => ({ testid: `overview-incident-${i.id}` }), empty: "No open incidents." },
      ),
    );
  };

  const drawAutomation = () => {
    const a = state.automation;
    if (!a) {
      fill(autoBox, h("p", { class: "muted" }, "Self-healing is disabled on this server (heal.enabled is false)."));
      return;
    }
    const select = h(
      "select",
      { testid: "automation-mode", "aria-label": "automation mode", disabled: !session.can("operator") },
      ["off", "dry_run", "on"].map((m) => h("option", { value: m, selected: m === a.mode }, m.replace("_", " "))),
    );
    const why = reasonInput("why (recorded in the audit log)");
    select.addEventListener("change", async () => {
      const mode = select.value;
      select.disabled = true;
      try {
        state.automation = await api.put("/api/v1/automation", {
          mode,
          who: session.name(),
          why: reasonOf(why, `set to ${mode} from the dashboard`),
        });
      } catch (err) {
        showError(err, "automation switch");
        select.value = a.mode;
      } finally {
        select.disabled = !session.can("operator");
      }
      drawAutomation();
    });
    const changed = a.changed;
    fill(
      autoBox,
      h(
        "div",
        { class: "automation" },
        h("label", {}, "Healing mode ", select),
        why,
        h("p", { class: "muted" }, approvalText(a.approval_above_risk)),
        changed && changed.who
          ? h(
              "p",
              { class: "muted" },
              `Mode set by ${changed.who}${changed.at ? ` ${fmtAgo(changed.at)}` : ""}${changed.why ? `: ${changed.why}` : ""}.`,
            )
          : null,
      ),
    );
  };

  const drawSlo = (rows) => {
    fill(
      sloBox,
      table(
        [
          { title: "Service", cell: (r) => h("a", { href: href("service", r.service) }, r.service) },
          {
            title: "Error budget left",
            cell: (r) => {
              const left = r.slo?.budget_remaining;
              if (left === null || left === undefined) return "-";
              const pct = Math.max(0, Math.min(1, left));
              return h(
                "div",
                { class: "budget", title: fmtPct(left) },
                h("meter", { min: 0, max: 1, low: 0.25, high: 0.5, optimum: 1, value: pct }),
                left < -0.005 ? ` overspent (${fmtPct(left, 0)})` : ` ${fmtPct(Math.max(0, left), 0)}`,
              );
            },
          },
          { title: "Objective", cell: (r) => (r.slo?.objective ? fmtPct(r.slo.objective, 2) : "-") },
          { title: "Error ratio", cell: (r) => fmtPct(r.slo?.error_ratio, 2) },
          {
            title: "Burn rate",
            cell: (r) =>
              Object.entries(r.slo?.window_burn || {})
                .map(([w, x]) => [parseFloat(w), x])
                .sort((a, b) => a[0] - b[0])
                .filter(([secs]) => [300, 3600, 21600, 259200].includes(secs))
                .map(([secs, x]) => `${window_(secs)} ${fmtNum(x, 2)}x`)
                .join(" · ") || "-",
          },
          {
            title: "Status",
            cell: (r) =>
              r.slo
                ? h("span", { class: `badge sev-${r.slo.severity || "ok"}` }, r.slo.severity || "ok")
                : r.reason || "no SLO data",
          },
          {
            title: "Alerts",
            cell: (r) => {
              const alerts = r.slo?.alerts || [];
              if (!alerts.length) return "-";
              const more = alerts.length > 1 ? ` (+${alerts.length - 1} more)` : "";
              return h("span", { title: alerts.join("\n") }, alerts[0] + more);
            },
          },
        ],
        rows,
        { empty: "No service is followed by prediction yet." },
      ),
    );
  };

  const loadHealth = async (svc) => {
    try {
      const hs = await api.get(`/api/v1/services/${enc(svc)}/health`);
      state.health.set(svc, hs);
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
  };

  const loadIncident = async (id) => {
    const inc = await getOptional(`/api/v1/incidents/${enc(id)}`);
    if (inc) state.incidents.set(inc.id, inc);
  };

  const loadSlo = async () => {
    const followed = (await getOptional("/api/v1/capacity", null, [])) || [];
    const rows = await Promise.all(
      followed.map(async (c) => {
        const f = await getOptional(`/api/v1/forecasts/${enc(c.service)}`);
        return { service: c.service, slo: f?.slo || null, reason: f ? f.notes?.slo : "not followed" };
      }),
    );
    drawSlo(rows);
  };

  const load = async () => {
    const [topo, incidents, automation] = await Promise.all([
      api.get("/api/v1/topology"),
      api.get("/api/v1/incidents", { limit: 500 }),
      getOptional("/api/v1/automation"),
    ]);
    state.topo = topo;
    state.incidents = new Map(incidents.map((i) => [i.id, i]));
    state.automation = automation;
    drawAutomation();
    drawIncidents();
    drawMap();
    await Promise.all(topo.services.map(loadHealth));
    drawMap();
    await loadSlo();
  };

  // The error budgets move with every request, and no live topic carries them: read again every half
  // minute (they showed a budget as ok for minutes after its burn-rate incident had opened).
  const sloTimer = setInterval(() => attempt(loadSlo, "error budgets"), SLO_REFRESH_MS);

  const since = live.mark();
  attempt(load, "loading the overview").then(() => {
    live.subscribe({
      topics: ["incidents", "health", "automation"],
      since,
      onReset: () => attempt(load, "reloading the overview"),
      handler: (ev) => onEvent(ev),
    });
  });

  async function onEvent(ev) {
    const d = ev.data || {};
    if (ev.topic === "incidents") {
      const inc = d.incident || d;
      if (inc.id && inc.title !== undefined && inc.status !== undefined) state.incidents.set(inc.id, inc);
      else if (inc.id || d.incident_id) await attempt(() => loadIncident(inc.id || d.incident_id), "live incident");
      drawIncidents();
      drawMap();
    } else if (ev.topic === "health") {
      const svc = d.service;
      if (!svc) return;
      if (d.score !== undefined && d.status !== undefined) state.health.set(svc, { ...state.health.get(svc), ...d });
      else await attempt(() => loadHealth(svc), "live health");
      drawMap();
    } else if (ev.topic === "automation") {
      state.automation = await attempt(() => getOptional("/api/v1/automation"), "live automation");
      drawAutomation();
    }
  }

  return () => clearInterval(sloTimer);
}

// The API reports the approval threshold as a runbook risk level: 0 low, 1 medium, 2 high (-1: none).
function approvalText(level) {
  if (typeof level === "string") return `Runbooks riskier than ${level} wait for a person's approval.`;
  if (level < 0) return "Every runbook waits for a person's approval.";
  if (level >= RISKS.length - 1) return "No runbook waits for approval.";
  return `Runbooks riskier than ${RISKS[level]} (${RISKS.slice(level + 1).join(", ")}) wait for a person's approval.`;
}
