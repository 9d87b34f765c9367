// #/incidents: every incident, newest first, filterable; new and changed ones arrive live.

import { api, enc, getOptional, session } from "./api.js";
import { fill, fmtAgo, fmtTime, h, section, tableRow } from "./dom.js";
import { href } from "./router.js";
import { attempt, opButton, priorityBadge, reasonInput, reasonOf, stateBadge } from "./widgets.js";

const SILENCE_VERBS = new Set(["silence", "expire_silence"]);
const SILENCE_REFRESH_MS = 30_000;
const STATES = ["active", "open", "acknowledged", "mitigating", "resolved", "all"];

const COLUMNS = [
  { title: "Priority", cell: (i) => priorityBadge(i.priority) },
  {
    title: "Incident",
    cell: (i) =>
      h(
        "span",
        {},
        h("a", { href: href("incident", i.id) }, i.title),
        i.type === "prediction" ? h("span", { class: "badge info" }, "predicted") : null,
        i.flapping ? h("span", { class: "badge warn" }, "flapping") : null,
      ),
  },
  { title: "Service", cell: (i) => (i.service ? h("a", { href: href("service", i.service) }, i.service) : "-") },
  { title: "Affected", cell: (i) => (i.services || []).join(", ") || "-" },
  { title: "State", cell: (i) => stateBadge(i.status) },
  { title: "Anomalies", class: "num", cell: (i) => String(i.anomaly_count) },
  { title: "Opened", cell: (i) => h("time", { title: fmtTime(i.opened_at) }, fmtAgo(i.opened_at)) },
  { title: "Last anomaly", cell: (i) => fmtAgo(i.last_anomaly_at) },
];

export function mount(root, { live }) {
  const incidents = new Map();
  const fresh = new Set();
  const stateSel = h(
    "select",
    { "aria-label": "state filter", testid: "incident-filter" },
    STATES.map((st) => h("option", { value: st }, st)),
  );
  const search = h("input", { type: "search", placeholder: "filter by service or title", "aria-label": "filter" });
  const body = h("tbody");
  const list = h(
    "table",
    { class: "grid", testid: "incident-list" },
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col", class: c.class }, c.title)))),
    body,
  );
  const count = h("p", { class: "muted" });
  stateSel.addEventListener("change", draw);
  search.addEventListener("input", draw);
  const silences = h("div", { testid: "silence-list" });
  const expireWhy = reasonInput("reason for expiring a silence (recorded in the audit log)");
  expireWhy.dataset.testid = "expire-reason";
  fill(
    root,
    section("Incidents", h("div", { class: "filters" }, stateSel, search, count), list),
    section("Silences in force", expireWhy, silences),
  );

  // Silences are an override of notification: each one in force can be expired here (audited by name).
  async function loadSilences() {
    const rows = (await api.get("/api/v1/silences")).filter((x) => x.state !== "expired");
    const matchers = (x) => x.matchers.map((m) => `${m.name}${m.isEqual === false ? "!" : ""}=${m.value}`).join(", ");
    fill(
      silences,
      rows.length
        ? h(
            "ul",
            { class: "plain" },
            rows.map((x) =>
              h(
                "li",
                { testid: `silence-${x.id}` },
                `${matchers(x)} - ${x.state} until ${fmtTime(x.endsAt)}, by ${x.createdBy}${x.comment ? `: ${x.comment}` : ""} `,
                opButton(
                  "Expire",
                  async () => {
                    await api.del(`/api/v1/silences/${enc(x.id)}`, {
                      by: session.name(),
                      reason: reasonOf(expireWhy, "expired from the dashboard"),
                    });
                    await loadSilences();
                  },
                  { testid: `expire-${x.id}`, kind: "warn" },
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No silence in force."),
    );
  }
  attempt(loadSilences, "loading silences");
  // A silence also ends by itself at its end time, which no event announces.
  const silenceTimer = setInterval(() => attempt(loadSilences, "silences"), SILENCE_REFRESH_MS);

  function visible(i) {
    const st = stateSel.value;
    if (st === "active" && i.status === "resolved") return false;
    if (!["active", "all"].includes(st) && i.status !== st) return false;
    const q = search.value.trim().toLowerCase();
    if (!q) return true;
    return [i.title, i.service, ...(i.services || [])].some((x) => x && x.toLowerCase().includes(q));
  }

  function draw() {
    const rows = [...incidents.values()].filter(visible).sort((a, b) => b.opened_at - a.opened_at);
    body.replaceChildren(
      ...rows.map((i) =>
        tableRow(COLUMNS, i, { testid: `incident-row-${i.id}`, class: fresh.has(i.id) ? "fresh" : undefined }),
      ),
    );
    if (!rows.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: COLUMNS.length }, "No incidents match.")));
    count.textContent = `${rows.length} shown of ${incidents.size}`;
  }

  async function load() {
    const rows = await api.get("/api/v1/incidents", { limit: 1000 });
    incidents.clear();
    rows.forEach((i) => incidents.set(i.id, i));
    draw();
  }

  const since = live.mark();
  attempt(load, "loading incidents").then(() =>
    live.subscribe({
      topics: ["incidents", "audit"],
      since,
      onReset: () => attempt(load, "reloading incidents"),
      handler: async (ev) => {
        const d = ev.data || {};
        if (ev.topic === "audit") {
          // A silence made or expired elsewhere (the API, another page) is listed at once.
          if (SILENCE_VERBS.has(d.verb)) attempt(loadSilences, "live silences");
          return;
        }
        let inc = d.incident || d;
        if (!inc.title && inc.id) inc = await getOptional(`/api/v1/incidents/${enc(inc.id)}`);
        if (!inc?.id) return;
        if (!incidents.has(inc.id)) fresh.add(inc.id);
        incidents.set(inc.id, inc);
        draw();
      },
    }),
  );
  return () => clearInterval(silenceTimer);
}
