// #/scaling: per scaled service, the load forecast against the actual load, replicas over time, the
// decisions with their reason chain and cost, and the operator's overrides (pin, min/max, pause, release).

import { api, enc, getOptional, session } from "./api.js";
import { Chart } from "./chart.js";
import { fill, fmtAgo, fmtNum, fmtTime, h, section, table } from "./dom.js";
import { href } from "./router.js";
import { attempt, opButton, reasonInput, reasonOf } from "./widgets.js";

const WINDOW_S = 3 * 3600;
const SCALE_VERBS = new Set(["scale", "scale_override", "scale_release"]);

export function mount(root, { live }) {
  const cards = new Map(); // service -> card state
  const listBox = h("div", { class: "scaling-list" }, "loading…");
  fill(root, h("div", { class: "page-head" }, h("h1", {}, "Scaling")), listBox);

  function serviceKey(all, service, metric) {
    const found = all.filter((s) => s.service === service && s.name === metric && !s.labels.pod);
    return found.length ? found[0].key : null;
  }

  function card(row) {
    const c = { row, charts: {}, keys: {}, audit: [] };
    c.decisionBox = h("div", {});
    c.overrideBox = h("div", {});
    c.historyBox = h("div", {});
    c.chartBox = h("div", { class: "charts two" });
    c.el = h(
      "section",
      { class: "panel scaling-card", testid: `scaling-${row.service}` },
      h(
        "h2",
        {},
        h("a", { href: href("service", row.service) }, row.service),
        ` · ${row.policy} policy via ${row.actuator} · ${row.min_replicas}-${row.max_replicas} replicas`,
      ),
      c.chartBox,
      h(
        "div",
        { class: "cols" },
        h("div", {}, h("h3", {}, "Latest decision"), c.decisionBox),
        h("div", {}, h("h3", {}, "Override"), c.overrideBox),
      ),
      h("h3", {}, "Decisions that acted, and overrides"),
      c.historyBox,
    );
    return c;
  }

  function drawDecision(c) {
    const d = c.row.decision;
    if (!d) {
      // The predictive policy decides from the predict stage's load prediction: none before its first.
      const why = c.row.policy === "predictive" ? ": it waits for the service's first load prediction (its first full minute of load)" : ".";
      fill(c.decisionBox, h("p", { class: "muted" }, `No decision yet${why}`));
      return;
    }
    fill(
      c.decisionBox,
      h(
        "p",
        {},
        h("strong", {}, `${d.replicas} replicas`),
        ` (was ${d.current}) · ${d.policy}${d.dry_run ? " · dry run" : ""} · `,
        d.cost_per_hour === null || d.cost_per_hour === undefined ? "cost unknown" : `${fmtNum(d.cost_per_hour, 3)} USD/h`,
        ` · ${fmtAgo(d.at)}`,
      ),
      h("ol", { class: "reasons", testid: `reasons-${c.row.service}` }, (d.reasons || []).map((r) => h("li", {}, r))),
    );
  }

  function overrideInputs(c) {
    // Made once per card: a decision arrives every scaling interval and redraws the card, and what an
    // operator is typing must survive it (a redraw used to put back the decided replicas and an empty
    // reason between typing and clicking Pin). An input keeps its own value once edited, until an action
    // on the card succeeds.
    if (c.inputs) return c.inputs;
    const { row } = c;
    const number = (label) => {
      const el = h("input", { type: "number", min: row.min_replicas, max: row.max_replicas, "aria-label": label, disabled: !session.can("operator") });
      el.addEventListener("input", () => (el.dataset.edited = "1"));
      return el;
    };
    c.inputs = { replicas: number("replicas to pin"), lo: number("minimum replicas"), hi: number("maximum replicas"), why: reasonInput() };
    return c.inputs;
  }

  function wholeNumber(input, what) {
    const v = input.value.trim();
    if (!/^\d+$/.test(v)) throw new Error(`${what}: enter a whole number of replicas${v ? `, not "${v}"` : ""}`);
    return Number(v);
  }

  function drawOverride(c) {
    const { row } = c;
    const o = row.override;
    const { replicas, lo, hi, why } = overrideInputs(c);
    const defaults = [
      [replicas, o?.replicas ?? row.decision?.replicas ?? row.min_replicas],
      [lo, o?.min_replicas ?? row.min_replicas],
      [hi, o?.max_replicas ?? row.max_replicas],
    ];
    for (const [input, value] of defaults) if (!input.dataset.edited) input.value = value;
    const done = (out, override) => {
      row.decision = out;
      row.override = override;
      for (const [input] of defaults) delete input.dataset.edited;
      why.value = "";
      drawDecision(c);
      drawOverride(c);
    };
    const apply = async (body) => {
      const out = await api.post(`/api/v1/scaling/${enc(row.service)}/override`, {
        ...body,
        by: session.name(),
        reason: reasonOf(why, "override from the dashboard"),
      });
      done(out, out.override);
    };
    fill(
      c.overrideBox,
      o
        ? h(
            "p",
            { class: "override-on" },
            h(
              "strong",
              {},
              o.kind === "bounds"
                ? `Automatic within ${o.min_replicas ?? row.min_replicas}-${o.max_replicas ?? row.max_replicas}`
                : o.replicas === null
                  ? "Automation paused"
                  : `Pinned to ${o.replicas}`,
            ),
            ` by ${o.by} ${fmtAgo(o.since)}${o.reason ? `: ${o.reason}` : ""}`,
          )
        : h("p", { class: "muted" }, `Automatic, within ${row.min_replicas}-${row.max_replicas} replicas.`),
      why,
      h(
        "div",
        { class: "buttons" },
        h("span", { class: "group" }, replicas, opButton("Pin", () => apply({ replicas: wholeNumber(replicas, "Pin") }), { testid: `pin-${row.service}` })),
        h(
          "span",
          { class: "group" },
          lo,
          hi,
          opButton(
            "Set min/max",
            () => apply({ min_replicas: wholeNumber(lo, "minimum"), max_replicas: wholeNumber(hi, "maximum") }),
            { testid: `bounds-${row.service}` },
          ),
        ),
        opButton("Pause", () => apply({ replicas: null }), { testid: `pause-${row.service}`, kind: "warn" }),
        o
          ? opButton(
              "Release",
              async () => {
                const out = await api.del(`/api/v1/scaling/${enc(row.service)}/override`, {
                  by: session.name(),
                  reason: reasonOf(why, "released from the dashboard"),
                });
                done(out, null);
              },
              { testid: `release-${row.service}` },
            )
          : null,
      ),
    );
  }

  function drawHistory(c) {
    fill(
      c.historyBox,
      table(
        [
          { title: "When", cell: (a) => fmtTime(a.at) },
          { title: "Who", cell: (a) => a.actor },
          { title: "What", cell: (a) => a.verb },
          {
            title: "Replicas",
            class: "num",
            cell: (a) => replicasMove(a.detail || {}),
          },
          { title: "Cost", class: "num", cell: (a) => (a.detail?.cost_per_hour ? `${fmtNum(a.detail.cost_per_hour, 3)} USD/h` : "-") },
          {
            title: "Reasons",
            cell: (a) =>
              h("span", { class: "detail" }, (a.detail?.reasons || []).join(" → ") || a.detail?.reason || a.detail?.released?.reason || ""),
          },
        ],
        c.audit.slice(0, 25),
        { empty: "No scaling action or override yet." },
      ),
    );
  }

  async function loadCard(c, all, end) {
    const svc = c.row.service;
    const load = serviceKey(all, svc, "request_rate");
    const desired = serviceKey(all, svc, "replicas_desired");
    const ready = serviceKey(all, svc, "replicas_ready");
    const query = (key) => api.get("/api/v1/series/query", { series: key, start: end - WINDOW_S, end, resolution: "auto" });
    c.keys = { load, desired, ready };
    c.charts.load = new Chart(c.chartBox, {
      id: `scaling-load-${svc}`,
      title: "Load: actual and forecast",
      unit: "requests/s",
      series: [{ label: "actual" }],
      windowS: WINDOW_S,
      height: 180,
    });
    c.charts.replicas = new Chart(c.chartBox, {
      id: `scaling-replicas-${svc}`,
      title: "Replicas",
      series: [{ label: "desired", step: true }, { label: "ready", step: true, dash: [4, 3] }],
      windowS: WINDOW_S,
      height: 180,
    });
    const [rl, rd, rr, forecast, audit] = await Promise.all([
      load ? query(load) : null,
      desired ? query(desired) : null,
      ready ? query(ready) : null,
      getOptional(`/api/v1/forecasts/${enc(svc)}`),
      api.get("/api/v1/audit", { service: svc, limit: 500 }),
    ]);
    if (rl) c.charts.load.setSeries(0, rl.timestamps, rl.values);
    if (rd) c.charts.replicas.setSeries(0, rd.timestamps, rd.values);
    if (rr) c.charts.replicas.setSeries(1, rr.timestamps, rr.values);
    setForecast(c, forecast);
    c.audit = audit.filter((a) => SCALE_VERBS.has(a.verb));
    drawDecision(c);
    drawOverride(c);
    drawHistory(c);
  }

  function setForecast(c, f) {
    const fc = f?.forecast;
    if (!fc) {
      c.charts.load.note(f ? f.notes?.forecast || "no forecast yet" : "not followed by prediction");
      return;
    }
    const level = Object.keys(fc.hi || {}).sort((a, b) => Number(b) - Number(a))[0];
    c.charts.load.setBand({
      ts: fc.timestamps,
      mean: fc.mean,
      lo: level ? fc.lo[level] : fc.mean,
      hi: level ? fc.hi[level] : fc.mean,
    });
    c.charts.load.note(`dashed: forecast mean (${fc.model}); band: ${level || "?"} % interval; updated ${fmtAgo(f.updated_at)}`);
  }

  async function load() {
    for (const c of cards.values()) Object.values(c.charts).forEach((ch) => ch.destroy());
    cards.clear();
    const [rows, all] = await Promise.all([api.get("/api/v1/scaling"), api.get("/api/v1/series", { limit: 100000 })]);
    if (!rows.length) {
      fill(listBox, h("p", { class: "muted" }, "No service is scaled (scale.services is empty)."));
      return;
    }
    fill(listBox);
    const end = Math.max(0, ...all.map((s) => s.last_ts || 0)) || Date.now() / 1000;
    for (const row of rows) {
      const c = card(row);
      cards.set(row.service, c);
      listBox.append(c.el);
    }
    await Promise.all([...cards.values()].map((c) => loadCard(c, all, end)));
  }

  const since = live.mark();
  attempt(load, "loading scaling").then(() => {
    const series = [...cards.values()].flatMap((c) => Object.values(c.keys).filter(Boolean));
    live.subscribe({
      topics: ["decisions", "audit", "samples"],
      services: [...cards.keys()],
      series,
      since,
      onReset: () => attempt(load, "reloading scaling"),
      handler: (ev) => {
        const d = ev.data || {};
        const c = cards.get(d.service || ev.service);
        if (!c) return;
        if (ev.topic === "decisions") {
          c.row.decision = d;
          if ("override" in d) c.row.override = d.override;
          drawDecision(c);
          drawOverride(c);
          // A new forecast comes with the decisions (every scaling interval): redraw the band from it.
          attempt(async () => setForecast(c, await getOptional(`/api/v1/forecasts/${enc(c.row.service)}`)), "forecast");
        } else if (ev.topic === "audit") {
          if (!SCALE_VERBS.has(d.verb) || c.audit.some((a) => a.id === d.id)) return;
          c.audit.unshift(d);
          drawHistory(c);
        } else if (ev.topic === "samples") {
          if (d.series === c.keys.load) c.charts.load.append(0, d.points);
          else if (d.series === c.keys.desired) c.charts.replicas.append(0, d.points);
          else if (d.series === c.keys.ready) c.charts.replicas.append(1, d.points);
        }
      },
    });
  });
  return () => {
    for (const c of cards.values()) Object.values(c.charts).forEach((ch) => ch.destroy());
  };
}

function replicasMove(d) {
  // A decision moves the replicas (current -> replicas); an override (kind pin / bounds / pause) holds
  // them; a release shows what it released.
  const held = d.released || d;
  if (held.kind === "pause") return d.released ? "pause released" : "paused";
  if (held.kind === "bounds") return `${d.released ? "released " : ""}within ${held.min_replicas ?? "…"}-${held.max_replicas ?? "…"}`;
  if (held.kind === "pin") return `${d.released ? "released " : ""}pinned to ${held.replicas}`;
  if (d.replicas == null) return "-";
  return d.current == null ? `→ ${d.replicas}` : `${d.current} → ${d.replicas}`;
}
