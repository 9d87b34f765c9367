// #/incident/<id>: what happened (timeline, root causes with evidence), what OpsMind makes of it
// (classification, recommended runbooks, remediations) and what a person can do about it.

import { ApiError, api, enc, getOptional, session } from "./api.js";
import { brief, fill, fmtAgo, fmtNum, fmtPct, fmtTime, h, section, table } from "./dom.js";
import { href } from "./router.js";
import { attempt, opButton, priorityBadge, reasonInput, reasonOf, remediationBadge, riskName, showError, stateBadge } from "./widgets.js";

const ROLLBACK_FROM = new Set(["executing", "verifying", "succeeded"]);
const SILENCE_FOR = { "1 h": 3600, "4 h": 4 * 3600, "24 h": 86400 };

export function mount(root, { live }, id) {
  const state = { incident: null, remediations: new Map(), advice: null, adviceError: null, audit: [], feedback: [] };
  const headBox = h("div", {}, "loading…");
  const actionsBox = h("div", {});
  const remBox = h("div", {}, "loading…");
  const adviceBox = h("div", {}, "loading…");
  const causesBox = h("div", {});
  const timelineBox = h("div", {});
  const auditBox = h("div", {});
  const why = reasonInput("reason for your action (recorded in the audit log)");
  why.dataset.testid = "action-reason";
  fill(
    root,
    h("div", { class: "page-head" }, h("a", { href: href("incidents") }, "← incidents")),
    headBox,
    h(
      "div",
      { class: "incident" },
      h(
        "div",
        { class: "main" },
        section("Actions", why, actionsBox),
        section("Remediations", remBox),
        section("Classification and recommended runbooks", adviceBox),
      ),
      h(
        "div",
        { class: "side" },
        section("Root causes", causesBox),
        section("Timeline", timelineBox),
        section("Audit trail", auditBox),
      ),
    ),
  );

  const because = (fallback) => reasonOf(why, fallback);
  // Made once: live updates redraw the actions, and a choice or a note made here must survive them (a
  // redraw used to reset "24 h" to "1 h" between choosing it and clicking Silence).
  const silenceFor = h(
    "select",
    { "aria-label": "silence for", testid: "silence-for", disabled: !session.can("operator") },
    Object.entries(SILENCE_FOR).map(([label, s]) => h("option", { value: s }, label)),
  );
  const silenceNote = h("p", { class: "muted", testid: "silence-note" });

  function drawHead() {
    const i = state.incident;
    const pe = i.priority_explanation || {};
    fill(
      headBox,
      h(
        "div",
        { class: "incident-head", testid: "incident-head" },
        h("h1", {}, i.title),
        h(
          "p",
          {},
          priorityBadge(i.priority),
          " ",
          stateBadge(i.status),
          " on ",
          i.service ? h("a", { href: href("service", i.service) }, i.service) : "-",
          ` · opened ${fmtTime(i.opened_at)} (${fmtAgo(i.opened_at)}) · ${i.anomaly_count} anomalies`,
          i.resolved_at ? ` · resolved ${fmtTime(i.resolved_at)}` : "",
          i.reopened ? ` · reopened ${i.reopened}x` : "",
          i.flapping ? " · flapping: notifications held" : "",
        ),
        (i.services || []).length > 1 ? h("p", {}, "Affected: ", i.services.join(", ")) : null,
        h(
          "ul",
          { class: "why-priority" },
          Object.entries(pe)
            .filter(([, v]) => v && typeof v === "object" && !Array.isArray(v) && "why" in v)
            .map(([k, v]) => h("li", {}, `${k.replace("_", " ")}: +${fmtNum(v.points, 2)} (${v.why})`)),
        ),
      ),
    );
  }

  function drawActions() {
    const i = state.incident;
    const move = (status, label) =>
      opButton(
        label,
        async () => {
          state.incident = await api.post(`/api/v1/incidents/${enc(id)}/status`, {
            status,
            by: session.name(),
            reason: because(`${label.toLowerCase()} from the dashboard`),
          });
          drawAll();
        },
        { testid: `status-${status}` },
      );
    const verdict = (v) =>
      opButton(
        v === "noise" ? "Mark noise" : "Mark actionable",
        async () => {
          await api.post(`/api/v1/incidents/${enc(id)}/feedback`, {
            verdict: v,
            by: session.name(),
            comment: because(""),
          });
          await loadFeedback();
        },
        { testid: `feedback-${v}` },
      );
    const silence = opButton(
      "Silence",
      async () => {
        const s = await api.post("/api/v1/silences", {
          matchers: [{ name: "service", value: i.service, isRegex: false, isEqual: true }],
          endsAt: Date.now() / 1000 + Number(silenceFor.value),
          createdBy: session.name(),
          comment: because(`silenced from incident ${id}`),
        });
        silenceNote.textContent = `Silenced notifications for service=${i.service} until ${fmtTime(s.endsAt)}.`;
      },
      { testid: "silence", title: "mute notifications for this incident's service" },
    );
    const last = state.feedback[0];
    fill(
      actionsBox,
      h(
        "div",
        { class: "buttons" },
        i.status === "open" ? move("acknowledged", "Acknowledge") : null,
        ["open", "acknowledged"].includes(i.status) ? move("mitigating", "Mitigating") : null,
        i.status !== "resolved" ? move("resolved", "Resolve") : move("open", "Reopen"),
        verdict("noise"),
        verdict("actionable"),
        h("span", { class: "group" }, silence, " for ", silenceFor),
      ),
      silenceNote,
      last ? h("p", { class: "muted" }, `Marked ${last.verdict} by ${last.by} ${fmtAgo(last.at)}.`) : null,
      session.can("operator") ? null : h("p", { class: "muted" }, `You are signed in as a ${session.role()}: actions need the operator role.`),
    );
  }

  function drawRemediations() {
    const rows = [...state.remediations.values()].sort((a, b) => b.created_at - a.created_at);
    const decide = (r, approve) =>
      opButton(
        approve ? "Approve" : "Reject",
        async () => {
          const out = await api.post(`/api/v1/remediations/${enc(r.id)}/${approve ? "approve" : "reject"}`, {
            who: session.name(),
            why: because(`${approve ? "approved" : "rejected"} from the dashboard`),
          });
          state.remediations.set(out.id, out);
          drawRemediations();
        },
        { testid: `${approve ? "approve" : "reject"}-${r.id}`, kind: approve ? "primary" : "warn" },
      );
    const rollback = (r) =>
      opButton(
        "Roll back",
        async () => {
          const out = await api.post(`/api/v1/remediations/${enc(r.id)}/rollback`, {
            why: because("rolled back from the dashboard"),
          });
          state.remediations.set(out.id, out);
          drawRemediations();
        },
        { testid: `rollback-${r.id}`, kind: "warn", confirm: `Undo what ${r.runbook} did on ${r.service}?` },
      );
    fill(
      remBox,
      table(
        [
          { title: "Runbook", cell: (r) => h("span", {}, r.runbook, r.dry_run ? h("span", { class: "badge info" }, "dry run") : null) },
          // The healer acts on the ranked root cause, which may not be the service the incident is filed under.
          { title: "On", cell: (r) => (r.service ? h("a", { href: href("service", r.service) }, r.service) : "-") },
          { title: "Risk", cell: (r) => riskName(r.risk) },
          { title: "State", cell: (r) => remediationBadge(r) },
          { title: "Step", cell: (r) => stepOf(r) },
          { title: "Why / last move", cell: (r) => lastMove(r) },
          {
            title: "Override",
            cell: (r) =>
              h(
                "span",
                { class: "buttons" },
                r.state === "proposed" ? [decide(r, true), decide(r, false)] : null,
                ROLLBACK_FROM.has(r.state) && !r.dry_run && canRollBack(r) ? rollback(r) : null,
              ),
          },
        ],
        rows,
        { rowAttrs: (r) => ({ testid: `remediation-${r.id}` }), empty: "No remediation for this incident yet." },
      ),
    );
  }

  function drawAdvice() {
    const a = state.advice;
    if (!a) {
      const why = state.adviceError || "self-healing is disabled on this server";
      fill(adviceBox, h("p", { class: "muted", testid: "no-classification" }, `No classification: ${why}.`));
      return;
    }
    const c = a.classification || {};
    const dry = h("input", { type: "checkbox", "aria-label": "dry run", disabled: !session.can("operator") });
    const run = (rb) =>
      opButton(
        "Run",
        async () => {
          const out = await api.post(`/api/v1/incidents/${enc(id)}/runbooks/${enc(rb.runbook)}/run`, {
            why: because(`run by hand from the dashboard`),
            dry_run: dry.checked,
          });
          state.remediations.set(out.id, out);
          drawRemediations();
        },
        { testid: `run-${rb.runbook}`, confirm: `Run ${rb.runbook} on ${state.advice.service || state.incident.service}?` },
      );
    fill(
      adviceBox,
      h(
        "p",
        { testid: "classification" },
        "Classified as ",
        h("strong", {}, c.kind || "unknown"),
        c.confidence !== undefined ? ` with confidence ${fmtPct(c.confidence, 0)}` : "",
        c.reason ? ` (${c.reason})` : "",
        (c.alternatives || []).length
          ? `; alternatives: ${c.alternatives.map((x) => `${x.kind} ${fmtPct(x.p, 0)}`).join(", ")}`
          : "",
      ),
      h("label", { class: "inline" }, dry, " dry run (record what would be done)"),
      table(
        [
          { title: "#", class: "num", cell: (r) => String(r.rank ?? "") },
          { title: "Runbook", cell: (r) => h("span", { title: r.description || "" }, r.runbook) },
          { title: "For", cell: (r) => r.kind || "-" },
          { title: "Success", class: "num", cell: (r) => (r.p_success === undefined ? "-" : fmtPct(r.p_success, 0)) },
          { title: "Risk", cell: (r) => riskName(r.risk) },
          {
            title: "Why",
            cell: (r) =>
              h(
                "span",
                { class: "detail" },
                r.explanation || "",
                r.problem ? h("em", {}, ` (${r.problem})`) : null,
                r.tried ? " (tried)" : "",
                // The healer passes such a runbook over; a person may still run it (its precheck refuses).
                r.applies_now === false ? h("em", { class: "muted" }, ` (does not apply now: ${r.precheck})`) : null,
              ),
          },
          { title: "", cell: (r) => (r.bindable === false ? h("span", { class: "muted" }, "cannot bind") : run(r)) },
        ],
        a.runbooks || [],
        { empty: "No runbook matches this incident." },
      ),
    );
  }

  function drawCauses() {
    const rc = state.incident.root_causes || [];
    fill(
      causesBox,
      rc.length
        ? h(
            "ol",
            { class: "causes" },
            rc.slice(0, 5).map((c) =>
              h(
                "li",
                {},
                h("a", { href: href("service", c.service) }, h("strong", {}, c.service)),
                ` score ${fmtNum(c.score, 3)}`,
                h("p", { class: "detail" }, brief(c.evidence, 600)),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No root cause ranked (see the timeline for why)."),
    );
  }

  function drawTimeline() {
    // Runs of anomaly events collapse into one line: an incident can gather hundreds.
    const items = [];
    let run = null;
    for (const t of state.incident.timeline || []) {
      if (t.event === "anomaly") {
        if (!run) items.push((run = { anomalies: [] }));
        run.anomalies.push(t);
        continue;
      }
      run = null;
      items.push(t);
    }
    fill(
      timelineBox,
      h(
        "ol",
        { class: "timeline" },
        items.slice(-200).map((t) =>
          t.anomalies
            ? h(
                "li",
                {},
                h("time", {}, fmtTime(t.anomalies[0].at)),
                ` ${t.anomalies.length} anomal${t.anomalies.length > 1 ? "ies" : "y"} on `,
                [...new Set(t.anomalies.map((a) => (a.series || "").split("{")[0]))].join(", "),
              )
            : h(
                "li",
                {},
                h("time", {}, fmtTime(t.at)),
                " ",
                h("strong", {}, t.event),
                " ",
                h("span", { class: "detail" }, brief(Object.fromEntries(Object.entries(t).filter(([k]) => !["at", "event"].includes(k))), 300)),
              ),
        ),
      ),
    );
  }

  function drawAudit() {
    const subjects = new Set([id, ...state.remediations.keys()]);
    fill(
      auditBox,
      table(
        [
          { title: "When", cell: (a) => fmtTime(a.at) },
          { title: "Who", cell: (a) => a.actor },
          { title: "What", cell: (a) => a.verb },
          { title: "Detail", cell: (a) => h("span", { class: "detail" }, brief(a.detail, 200)) },
        ],
        state.audit.filter((a) => subjects.has(a.subject)),
        { empty: "Nothing recorded on this incident yet." },
      ),
    );
  }

  function drawAll() {
    drawHead();
    drawActions();
    drawRemediations();
    drawAdvice();
    drawCauses();
    drawTimeline();
    drawAudit();
  }

  async function loadFeedback() {
    state.feedback = (await getOptional("/api/v1/feedback", { incident_id: id, limit: 5 }, [])) || [];
    drawActions();
  }

  async function loadRemediations() {
    // By incident: a remediation may target the ranked root cause, not the incident's first service.
    const rems = (await getOptional("/api/v1/remediations", { incident_id: id, limit: 1000 }, [])) || [];
    state.remediations = new Map(rems.filter((r) => r.incident_id === id).map((r) => [r.id, r]));
  }

  async function loadAdvice() {
    // 503: healing is off on this server; any other refusal is shown with its reason, never as "off".
    try {
      state.advice = await api.get(`/api/v1/incidents/${enc(id)}/runbooks`);
      state.adviceError = null;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      state.advice = null;
      state.adviceError = err.status === 503 ? null : err.message;
    }
  }

  async function loadAudit() {
    // The trail of the incident and of its remediations, which may act on other services than its own.
    const services = new Set([state.incident.service, ...(state.incident.services || [])]);
    for (const r of state.remediations.values()) services.add(r.service);
    const lists = await Promise.all(
      [...services].filter(Boolean).map((svc) => api.get("/api/v1/audit", { service: svc, limit: 1000 })),
    );
    const byId = new Map(lists.flat().map((a) => [a.id, a]));
    return [...byId.values()].sort((a, b) => b.at - a.at);
  }

  async function load() {
    state.incident = await api.get(`/api/v1/incidents/${enc(id)}`);
    await Promise.all([loadRemediations(), loadAdvice().catch((err) => showError(err, "classification"))]);
    state.audit = await loadAudit();
    drawAll();
    await loadFeedback();
  }

  const since = live.mark();
  attempt(load, "loading the incident").then(() => {
    if (!state.incident) return;
    live.subscribe({
      topics: ["incidents", "remediations", "audit"],
      services: [
        ...new Set(
          [state.incident.service, ...(state.incident.services || []), ...[...state.remediations.values()].map((r) => r.service)].filter(Boolean),
        ),
      ],
      since,
      onReset: () => attempt(load, "reloading the incident"),
      handler: (ev) => {
        const d = ev.data || {};
        if (ev.topic === "incidents") {
          const inc = d.incident || d;
          if (inc.id !== id) return;
          state.incident = inc;
          drawHead();
          drawActions();
          drawCauses();
          drawTimeline();
        } else if (ev.topic === "remediations") {
          if (d.incident_id !== id) return;
          state.remediations.set(d.id, d);
          drawRemediations();
          drawAudit();
        } else if (ev.topic === "audit") {
          if (!state.audit.some((a) => a.id === d.id)) state.audit.unshift(d);
          drawAudit();
        }
      },
    });
  });
  return () => {};
}

function canRollBack(r) {
  // What the server undoes (Executor.roll_back): a sent step whose runbook declares a rollback, or one
  // whose actuator returned a revert token. Offering it otherwise only earned a 409.
  if (Object.keys(r.revert_tokens || {}).length) return true;
  const sent = new Set((r.sent_keys || []).map((k) => Number((/:step(\d+):action$/.exec(k) || [])[1])));
  return (r.rollback_steps || []).some((i) => sent.has(i));
}

function stepOf(r) {
  // The step being run while executing; otherwise how many steps were run (none for one never started).
  if (r.state === "executing") return `${Math.min(r.step_index + 1, r.step_count)}/${r.step_count}`;
  const done = r.started_at == null ? 0 : r.state === "succeeded" || r.state === "verifying" ? r.step_count : r.step_index;
  return `${done}/${r.step_count}`;
}

function lastMove(r) {
  const history = r.history || [];
  const last = history[history.length - 1];
  const esc = (r.escalations || []).slice(-1)[0];
  const text = last ? `${last.by}: ${last.why}` : "";
  return h("span", { class: "detail", title: fmtTime(r.at) }, brief(esc ? `${text} (escalated: ${esc})` : text, 200));
}
