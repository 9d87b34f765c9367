// #/service/<name>: the golden signals (and an ML service's model quality and drift) as charts (anomaly
// markers, the load forecast's band), the health score with its explanation, recent decisions and
// actions, and pausing healing for the service.

import { api, enc, getOptional } from "./api.js";
import { Chart } from "./chart.js";
import { brief, fill, fmtAgo, fmtNum, fmtTime, h, section, table } from "./dom.js";
import { href } from "./router.js";
import { STATUS_STYLE } from "./servicemap.js";
import { attempt, opButton, reasonInput, reasonOf, remediationBadge } from "./widgets.js";

// The golden signals, then an ML service's model signals (charted only where the service has them).
export const SIGNALS = ["traffic", "latency", "errors", "saturation", "model_quality", "model_drift"];
const SIGNAL_TITLES = {
  traffic: "Traffic",
  latency: "Latency",
  errors: "Errors",
  saturation: "Saturation",
  model_quality: "Model quality",
  model_drift: "Model drift",
};
// When the service has no health reading to say which series speak, these metric names do.
const FALLBACK = {
  traffic: ["request_rate", "requests_per_second", "http_requests_total", "requests_total"],
  latency: ["latency_seconds", "request_duration_seconds", "http_request_duration_seconds"],
  errors: ["error_ratio", "error_rate"],
  saturation: ["cpu_utilisation", "cpu_utilization", "memory_utilisation", "pool_in_use_ratio"],
  model_quality: ["model_accuracy", "model_auc", "model_f1"],
  model_drift: ["model_drift_score", "model_drift"],
};
const WINDOWS = { "1 h": 3600, "6 h": 6 * 3600, "24 h": 86400 };

/** Per-second rates of a counter (``*_total``): a drop is a reset, its new value counts from zero. */
export function rates(xs, ys) {
  const rx = [];
  const ry = [];
  for (let i = 1; i < xs.length; i++) {
    const dt = xs[i] - xs[i - 1];
    if (dt <= 0 || ys[i] === null || ys[i - 1] === null) continue;
    const dv = ys[i] >= ys[i - 1] ? ys[i] - ys[i - 1] : ys[i];
    rx.push(xs[i]);
    ry.push(dv / dt);
  }
  return [rx, ry];
}

const isCounter = (metric) => metric.endsWith("_total");
const metricOf = (key) => key.split("{")[0];
const labelOf = (key) => {
  const q = key.match(/quantile="([^"]+)"/);
  return q ? `p${Number(q[1]) * 100}` : metricOf(key);
};

export function mount(root, { live }, name) {
  let windowS = 3600;
  const charts = new Map(); // metric -> {chart, keys: [series keys]}
  const state = { health: null, automation: null, remediations: new Map(), audit: [] };
  const healthBox = h("div", {}, "loading…");
  const chartsBox = h("div", { class: "charts" });
  const actsBox = h("div", {}, "loading…");
  const auditBox = h("div", {}, "loading…");
  const pauseBox = h("div", {});
  const regBox = h("div", {});
  const windowSel = h(
    "select",
    { "aria-label": "time window" },
    Object.entries(WINDOWS).map(([label, s]) => h("option", { value: s, selected: s === windowS }, label)),
  );
  windowSel.addEventListener("change", () => {
    windowS = Number(windowSel.value);
    start();
  });
  fill(
    root,
    h("div", { class: "page-head" }, h("h1", {}, name), h("a", { href: href("overview") }, "← overview")),
    h(
      "div",
      { class: "service" },
      h(
        "div",
        { class: "main" },
        section("Golden signals", h("label", { class: "window" }, "window ", windowSel), chartsBox),
      ),
      h(
        "div",
        { class: "side" },
        section("Health", healthBox),
        section("Registration", regBox),
        section("Healing for this service", pauseBox),
        section("Remediations", actsBox),
        section("Recent decisions and actions", auditBox),
      ),
    ),
  );

  const drawHealth = () => {
    const hs = state.health;
    if (!hs) {
      fill(healthBox, h("p", { class: "muted" }, "No health reading for this service."));
      return;
    }
    const st = STATUS_STYLE[hs.status] || STATUS_STYLE.unknown;
    fill(
      healthBox,
      h(
        "div",
        { class: `health status-${hs.status}`, testid: "health-score" },
        h("span", { class: "score", style: { borderColor: st.color } }, hs.score === null ? "?" : Math.round(hs.score)),
        h("span", { class: "status-text" }, ` ${st.label}`),
      ),
      h("p", { testid: "health-explanation" }, hs.explanation),
      hs.contributions
        ? table(
            [
              { title: "Signal", cell: (c) => c.signal },
              { title: "Now", cell: (c) => fmtNum(c.value) },
              { title: "Baseline", cell: (c) => fmtNum(c.baseline) },
              { title: "Penalty", cell: (c) => fmtNum(c.penalty, 2) },
              { title: "Note", cell: (c) => c.note },
            ],
            hs.contributions,
          )
        : null,
    );
  };

  /** What the service registry knows (PUT /api/v1/services/{name}): type, owner, metrics and their scrape. */
  const drawRegistration = (svc) => {
    const reg = svc?.registration;
    if (!reg) {
      fill(regBox, h("p", { class: "muted" }, "Not registered: known from the service label of its series."));
      return;
    }
    const scrape = svc.scrape;
    const scraped = !reg.metrics_url
      ? "no metrics URL"
      : !scrape
        ? `${reg.metrics_url}: not scraped yet`
        : scrape.up
          ? `${reg.metrics_url}: up, ${scrape.series} series, ${fmtAgo(scrape.at)}`
          : `${reg.metrics_url}: down (${scrape.error}), ${fmtAgo(scrape.at)}`;
    fill(
      regBox,
      h(
        "p",
        { testid: "registration" },
        `${reg.type || "type not given"}; owner ${reg.owner || "not given"}; registered by ${reg.by} ${fmtAgo(reg.at)}.`,
      ),
      h("p", {}, `Metrics: ${scraped}.`),
      h(
        "p",
        { testid: "depends-on" },
        "Calls: ",
        (reg.depends_on || []).length
          ? reg.depends_on.flatMap((callee, i) => [i ? ", " : "", h("a", { href: href("service", callee) }, callee)])
          : h("span", { class: "muted" }, "none declared (depends_on)"),
      ),
    );
  };

  const drawPause = () => {
    const a = state.automation;
    if (!a) {
      fill(pauseBox, h("p", { class: "muted" }, "Self-healing is disabled on this server."));
      return;
    }
    const pause = (state.paused || []).find((p) => p.service === name);
    const paused = Boolean(pause);
    const why = reasonInput();
    const toggle = opButton(
      paused ? "Resume healing" : "Pause healing",
      async () => {
        await api.put(`/api/v1/automation/services/${enc(name)}`, {
          paused: !paused,
          why: reasonOf(why, `${paused ? "resumed" : "paused"} from the dashboard`),
        });
        await loadPause();
      },
      { testid: "pause-healing", kind: paused ? "" : "warn" },
    );
    fill(
      pauseBox,
      h(
        "p",
        {},
        `Global mode: ${a.mode.replace("_", " ")}. `,
        paused
          ? h("strong", {}, `Paused for this service by ${pause.who}${pause.why ? ` (${pause.why})` : ""}, ${fmtAgo(pause.at)}.`)
          : "Active for this service.",
      ),
      why,
      toggle,
    );
  };

  const loadPause = async () => {
    const [automation, paused] = await Promise.all([
      getOptional("/api/v1/automation"),
      getOptional("/api/v1/automation/services", null, []),
    ]);
    state.automation = automation;
    state.paused = paused || [];
    drawPause();
  };

  const drawActions = () => {
    const rows = [...state.remediations.values()].sort((a, b) => b.at - a.at).slice(0, 20);
    fill(
      actsBox,
      table(
        [
          { title: "Runbook", cell: (r) => r.runbook },
          { title: "State", cell: (r) => remediationBadge(r) },
          { title: "Incident", cell: (r) => (r.incident_id ? h("a", { href: href("incident", r.incident_id) }, "open") : "-") },
          { title: "Changed", cell: (r) => fmtAgo(r.at) },
        ],
        rows,
        { empty: "No remediation for this service." },
      ),
    );
  };

  const drawAudit = () => {
    fill(
      auditBox,
      table(
        [
          { title: "When", cell: (a) => fmtTime(a.at) },
          { title: "Who", cell: (a) => a.actor },
          { title: "What", cell: (a) => a.verb },
          { title: "Detail", cell: (a) => h("span", { class: "detail" }, brief(a.detail, 160)) },
        ],
        state.audit.slice(0, 30),
        { empty: "Nothing decided or done on this service yet." },
      ),
    );
  };

  /** The series that speak for each golden signal: the health reading's, else known metric names. */
  const pickSeries = async () => {
    const chosen = new Map(); // metric -> {signal, keys}
    for (const c of state.health?.contributions || []) {
      if (!SIGNALS.includes(c.signal) || !c.series || !c.series.includes("{")) continue;
      const metric = metricOf(c.series);
      const entry = chosen.get(metric) || { signal: c.signal, keys: [] };
      if (!entry.keys.includes(c.series)) entry.keys.push(c.series);
      chosen.set(metric, entry);
    }
    const all = await api.get("/api/v1/series", { match: `service=${name}`, limit: 5000 });
    const serviceLevel = all.filter((s) => !s.labels.pod);
    for (const signal of SIGNALS) {
      if ([...chosen.values()].some((e) => e.signal === signal)) continue;
      const metric = FALLBACK[signal].find((m) => serviceLevel.some((s) => s.name === m));
      if (metric) chosen.set(metric, { signal, keys: serviceLevel.filter((s) => s.name === metric).map((s) => s.key) });
    }
    // Latency: the other quantiles of the same summary beside the one that speaks.
    for (const [metric, entry] of chosen) {
      if (entry.signal !== "latency") continue;
      const more = serviceLevel.filter((s) => s.name === metric && !entry.keys.includes(s.key)).map((s) => s.key);
      entry.keys = [...entry.keys, ...more].sort().slice(0, 4);
    }
    return [...chosen.entries()].sort((a, b) => SIGNALS.indexOf(a[1].signal) - SIGNALS.indexOf(b[1].signal));
  };

  const loadChart = async (metric, entry, end) => {
    const title = `${SIGNAL_TITLES[entry.signal]}: ${metric}${isCounter(metric) ? " (per second)" : ""}`;
    const chart = new Chart(chartsBox, {
      id: metric,
      title,
      series: entry.keys.map((k) => ({ label: labelOf(k) })),
      windowS,
      height: 200,
    });
    charts.set(metric, { chart, keys: entry.keys, signal: entry.signal, counter: isCounter(metric), last: new Map() });
    await Promise.all(
      entry.keys.map(async (key, i) => {
        const r = await api.get("/api/v1/series/query", { series: key, start: end - windowS, end, resolution: "auto" });
        let xs = r.timestamps;
        let ys = r.values;
        if (isCounter(metric)) {
          charts.get(metric).last.set(key, [xs[xs.length - 1], ys[ys.length - 1]]);
          [xs, ys] = rates(xs, ys);
        }
        chart.setSeries(i, xs, ys);
        chart.note(`${r.resolution} resolution`);
      }),
    );
    return chart;
  };

  const loadMarkers = async (end) => {
    const anomalies = await api.get("/api/v1/anomalies", { service: name, since: end - windowS, limit: 5000 });
    for (const a of anomalies) addAnomaly(a);
  };

  const addAnomaly = (a) => {
    if (!a.series) return;
    const c = charts.get(metricOf(a.series));
    if (!c) return;
    const i = c.keys.indexOf(a.series);
    if (i < 0) return;
    const v = c.counter ? c.chart.valueAt(i, a.ts) : (a.value ?? c.chart.valueAt(i, a.ts));
    c.chart.addMarker({ t: a.ts, v });
  };

  const loadForecast = async () => {
    const f = await getOptional(`/api/v1/forecasts/${enc(name)}`);
    const traffic = [...charts.values()].find((c) => c.signal === "traffic");
    if (!f || !f.forecast || !traffic) return;
    const levels = Object.keys(f.forecast.hi || {}).sort((a, b) => Number(b) - Number(a));
    const level = levels[0];
    traffic.chart.setBand({
      ts: f.forecast.timestamps,
      mean: f.forecast.mean,
      lo: level ? f.forecast.lo[level] : f.forecast.mean,
      hi: level ? f.forecast.hi[level] : f.forecast.mean,
    });
    // How far its latency warnings have proven right here, so a reader knows how much to trust the next.
    const record = f.warning_track_record ? `; latency warnings so far: ${f.warning_track_record.summary}` : "";
    traffic.chart.note(`forecast (${f.forecast.model}), band: ${level || "?"} % interval${record}`);
  };

  const loadSide = async () => {
    const [health, rems, audit, svc] = await Promise.all([
      getOptional(`/api/v1/services/${enc(name)}/health`, null, null, [404]),
      getOptional("/api/v1/remediations", { service: name, limit: 50 }, []),
      api.get("/api/v1/audit", { service: name, limit: 100 }),
      getOptional(`/api/v1/services/${enc(name)}`, null, null, [404]),
    ]);
    state.health = health;
    drawRegistration(svc);
    state.remediations = new Map((rems || []).map((r) => [r.id, r]));
    state.audit = audit;
    drawHealth();
    await loadPause();
    drawActions();
    drawAudit();
  };

  let generation = 0;
  async function start() {
    const mine = ++generation;
    for (const c of charts.values()) c.chart.destroy();
    charts.clear();
    fill(chartsBox);
    const since = live.mark();
    await attempt(loadSide, "loading the service");
    if (mine !== generation) return;
    const end = state.health?.at ?? Date.now() / 1000; // the server's clock when it has told it
    const picked = await attempt(pickSeries, "finding the service's series");
    if (!picked || mine !== generation) return;
    if (!picked.length) chartsBox.append(h("p", { class: "muted" }, "No golden-signal series for this service."));
    await attempt(async () => {
      for (const [metric, entry] of picked) await loadChart(metric, entry, end);
      await loadMarkers(end);
      await loadForecast();
    }, "loading the charts");
    if (mine !== generation) return;
    live.subscribe({
      topics: ["samples", "anomalies", "health", "remediations", "decisions", "audit", "automation"],
      services: [name],
      series: [...charts.values()].flatMap((c) => c.keys),
      since,
      onReset: () => start(),
      handler: onEvent,
    });
  }

  function onEvent(ev) {
    const d = ev.data || {};
    switch (ev.topic) {
      case "samples": {
        const c = charts.get(d.metric || metricOf(d.series));
        const i = c ? c.keys.indexOf(d.series) : -1;
        if (i < 0) return;
        if (c.counter) {
          const prev = c.last.get(d.series);
          const pts = prev ? [prev, ...d.points] : d.points;
          c.last.set(d.series, pts[pts.length - 1]);
          const [xs, ys] = rates(pts.map((p) => p[0]), pts.map((p) => p[1]));
          c.chart.append(i, xs.map((x, k) => [x, ys[k]]));
        } else c.chart.append(i, d.points);
        break;
      }
      case "anomalies":
        addAnomaly(d);
        break;
      case "health":
        // The event carries the score and status only: the signals' table is read again, so it never
        // contradicts the explanation above it.
        state.health = { ...(state.health || {}), ...d };
        drawHealth();
        attempt(async () => {
          const fresh = await getOptional(`/api/v1/services/${enc(name)}/health`, null, null, [404]);
          if (fresh) {
            state.health = fresh;
            drawHealth();
          }
        }, "live health");
        break;
      case "remediations":
        state.remediations.set(d.id, d);
        drawActions();
        break;
      case "audit":
        if (!state.audit.some((a) => a.id === d.id)) state.audit.unshift(d);
        drawAudit();
        break;
      case "decisions":
        break; // a scaling decision also writes an audit entry when it acts; the audit table shows it
      case "automation":
        attempt(loadPause, "live automation");
        break;
      default:
        break;
    }
  }

  start();
  return () => {
    generation++;
    for (const c of charts.values()) c.chart.destroy();
  };
}
