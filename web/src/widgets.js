// Shared pieces of the pages: the error banner, buttons that need a role, badges.

import { ApiError, session } from "./api.js";
import { h } from "./dom.js";

let banner = null;

export function bindBanner(el) {
  banner = el;
  clearError();
}

/** Show an error in the banner with the server's reason. */
export function showError(err, context = "") {
  if (!banner) return;
  let text;
  if (err instanceof ApiError) {
    const status = err.status ? `HTTP ${err.status}` : "network error";
    text = `${context ? `${context}: ` : ""}${status} on ${err.method} ${err.path}: ${err.detail}`;
  } else {
    text = `${context ? `${context}: ` : ""}${err?.message || String(err)}`;
  }
  banner.querySelector(".banner-text").textContent = text;
  banner.hidden = false;
  console.warn(text);
}

export function clearError() {
  if (!banner) return;
  banner.hidden = true;
  banner.querySelector(".banner-text").textContent = "";
}

/** Run ``fn`` and report its failure in the banner; answers its result or undefined. */
export async function attempt(fn, context = "") {
  try {
    return await fn();
  } catch (err) {
    showError(err, context);
    return undefined;
  }
}

/**
 * A button for an operator's action: disabled (and saying why) for a lower role; while its action runs it
 * is disabled; a failure goes to the banner with the server's reason.
 */
export function opButton(label, action, { testid, role = "operator", title, kind = "", confirm: ask } = {}) {
  const allowed = session.can(role);
  const btn = h(
    "button",
    {
      type: "button",
      class: `btn ${kind}`.trim(),
      testid,
      disabled: !allowed,
      title: allowed ? title : `needs the ${role} role (you are ${session.role()})`,
    },
    label,
  );
  btn.addEventListener("click", async () => {
    if (ask && !window.confirm(ask)) return;
    btn.disabled = true;
    try {
      await action();
      clearError(); // an earlier failure's banner no longer describes the page
    } catch (err) {
      showError(err, label);
    } finally {
      if (btn.isConnected) btn.disabled = !session.can(role);
    }
  });
  return btn;
}

export const PRIORITY_BANDS = [
  { min: 80, label: "P1", cls: "p1" },
  { min: 60, label: "P2", cls: "p2" },
  { min: 40, label: "P3", cls: "p3" },
  { min: 0, label: "P4", cls: "p4" },
];

export function priorityBadge(priority) {
  const p = Number(priority) || 0;
  const band = PRIORITY_BANDS.find((b) => p >= b.min);
  // Rounded down, as the bands are: 79.8 is P2 and must not read "80", where P1 starts.
  const shown = Math.floor(p);
  return h("span", { class: `badge ${band.cls}`, title: `priority ${p.toFixed(1)}/100` }, `${band.label} · ${shown}`);
}

// Runbook risk levels; the API gives a remediation's risk (and the approval threshold) as their index.
export const RISKS = ["low", "medium", "high"];
export function riskName(risk) {
  return typeof risk === "number" ? (RISKS[risk] ?? String(risk)) : String(risk ?? "-");
}

export function stateBadge(state) {
  return h("span", { class: `badge state state-${state}` }, String(state).replace("_", " "));
}

/** A remediation's state; one that failed before sending anything (its precheck said no) changed nothing
 * and is shown so, not as a failure of an action. */
export function remediationBadge(r) {
  if (r.state === "failed" && r.finished && !(r.sent_keys || []).length) {
    return h(
      "span",
      { class: "badge state state-aborted", title: "its precheck said no: nothing was sent" },
      "nothing sent",
    );
  }
  return stateBadge(r.state);
}

/** A text input for the "why" the API records with an operator's action. */
export function reasonInput(placeholder = "reason (recorded in the audit log)") {
  return h("input", {
    type: "text",
    class: "reason",
    placeholder,
    "aria-label": placeholder,
    maxlength: 4096,
    disabled: !session.can("operator"),
  });
}

export function reasonOf(input, fallback) {
  const v = input.value.trim();
  return v || fallback;
}
