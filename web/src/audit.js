// #/audit: who (or what) did what, why, newest first; filter by service, actor, verb and text. Live.

import { api } from "./api.js";
import { brief, fill, fmtTime, h, section, tableRow } from "./dom.js";
import { attempt } from "./widgets.js";

const COLUMNS = [
  { title: "When", cell: (a) => fmtTime(a.at) },
  { title: "Service", cell: (a) => a.service || "-" },
  { title: "Who", cell: (a) => a.actor },
  { title: "What", cell: (a) => a.verb },
  { title: "Subject", cell: (a) => h("code", {}, brief(a.subject, 40)) },
  { title: "Detail", cell: (a) => h("span", { class: "detail", title: brief(a.detail, 4000) }, brief(a.detail, 300)) },
];

export function mount(root, { live }) {
  let entries = [];
  const service = h("input", { type: "search", placeholder: "service", "aria-label": "service", testid: "audit-service" });
  const actor = h("input", { type: "search", placeholder: "who", "aria-label": "who", testid: "audit-actor" });
  const verb = h("select", { "aria-label": "what", testid: "audit-verb" }, h("option", { value: "" }, "any action"));
  const text = h("input", { type: "search", placeholder: "text in subject or detail", "aria-label": "text", testid: "audit-text" });
  const limit = h(
    "select",
    { "aria-label": "how many" },
    [200, 1000, 5000].map((n) => h("option", { value: n }, `last ${n}`)),
  );
  const count = h("span", { class: "muted" });
  const body = h("tbody");
  const tbl = h(
    "table",
    { class: "grid", testid: "audit-table" },
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c.title)))),
    body,
  );
  fill(root, section("Audit log", h("div", { class: "filters" }, service, actor, verb, text, limit, count), tbl));
  for (const el of [service, actor, text]) el.addEventListener("input", draw);
  verb.addEventListener("change", draw);
  limit.addEventListener("change", () => attempt(load, "loading the audit log"));

  function matches(a) {
    const has = (value, q) => !q || String(value || "").toLowerCase().includes(q.toLowerCase());
    if (!has(a.service, service.value.trim())) return false;
    if (!has(a.actor, actor.value.trim())) return false;
    if (verb.value && a.verb !== verb.value) return false;
    const t = text.value.trim();
    return !t || has(a.subject, t) || has(JSON.stringify(a.detail), t);
  }

  function drawVerbs() {
    const current = verb.value;
    const verbs = [...new Set(entries.map((a) => a.verb))].sort();
    fill(verb, h("option", { value: "" }, "any action"), verbs.map((v) => h("option", { value: v, selected: v === current }, v)));
  }

  function draw() {
    const rows = entries.filter(matches);
    body.replaceChildren(...rows.map((a) => tableRow(COLUMNS, a, { testid: "audit-row", "data-verb": a.verb, "data-subject": a.subject })));
    if (!rows.length) body.append(h("tr", { class: "empty" }, h("td", { colspan: COLUMNS.length }, "No entries match.")));
    count.textContent = `${rows.length} of ${entries.length}`;
  }

  async function load() {
    entries = await api.get("/api/v1/audit", { limit: Number(limit.value) });
    drawVerbs();
    draw();
  }

  const since = live.mark();
  attempt(load, "loading the audit log").then(() =>
    live.subscribe({
      topics: ["audit"],
      since,
      onReset: () => attempt(load, "reloading the audit log"),
      handler: (ev) => {
        const a = ev.data;
        if (!a?.id || entries.some((e) => e.id === a.id)) return;
        entries.unshift(a);
        if (!verb.querySelector(`option[value="${CSS.escape(a.verb)}"]`)) drawVerbs();
        draw();
      },
    }),
  );
  return () => {};
}
