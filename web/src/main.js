// The page's shell: who is signed in, the live connection, the navigation and the current view.

import { ApiError, api, onUnauthorized, session } from "./api.js";
import * as audit from "./audit.js";
import { fill, h } from "./dom.js";
import * as incident from "./incident.js";
import * as incidents from "./incidents.js";
import { Live } from "./live.js";
import * as login from "./login.js";
import * as overview from "./overview.js";
import { go, resolve } from "./router.js";
import * as scaling from "./scaling.js";
import * as service from "./service.js";
import { bindBanner, clearError, showError } from "./widgets.js";

const PAGES = { overview, service, incidents, incident, scaling, audit, login };
const TITLES = { overview: "Overview", service: "Service", incidents: "Incidents", incident: "Incident", scaling: "Scaling", audit: "Audit", login: "Sign in" };

const view = document.getElementById("view");
const status = document.querySelector('[data-testid="live-status"]');
const who = document.getElementById("who");
const nav = document.getElementById("nav");
bindBanner(document.querySelector('[data-testid="error-banner"]'));
document.getElementById("banner-close").addEventListener("click", clearError);

let cleanup = null;
let nextAfterLogin = "/overview";
let loginMessage = "";

const live = new Live({
  token: () => session.token(),
  onStatus: (state, text) => {
    status.textContent = text;
    status.dataset.state = state;
  },
  onDenied: (reason) => needLogin(`The live connection was refused: ${reason}`),
});

function needLogin(message) {
  const route = resolve(location.hash);
  if (route.page === "login") return;
  nextAfterLogin = route.path;
  loginMessage = message;
  session.clear();
  live.stop();
  go("/login");
}

onUnauthorized((err) => needLogin(session.token() ? `Please sign in again: ${err.detail}` : "Sign in to continue."));

function drawWho() {
  const s = session.get();
  if (!s) {
    fill(who);
    return;
  }
  const out = h(
    "button",
    {
      type: "button",
      class: "btn link",
      testid: "logout",
      onclick: async () => {
        try {
          await api.post("/api/v1/auth/logout");
        } catch {
          // signing out locally is enough if the server cannot be told
        }
        needLogin("Signed out.");
      },
    },
    "sign out",
  );
  fill(
    who,
    h("span", { testid: "whoami", "data-role": s.role }, `${s.name} (${s.role})`),
    s.auth ? out : h("span", { class: "muted", title: "api.auth.enabled is false" }, " · access control off"),
  );
}

async function identify() {
  try {
    // Without a token the server answers only when access control is off (everyone is "anonymous").
    const me = await api.get("/api/v1/auth/me");
    session.set({ ...(session.get() || {}), name: me.name, role: me.role, auth: Boolean(session.token()) });
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return false;
    if (err instanceof ApiError && err.status === 404) {
      // A server without the auth routes has no access control: everyone may do everything.
      session.set({ token: null, name: "anonymous", role: "admin", auth: false });
      return true;
    }
    showError(err, "who am I");
    return true;
  }
}

let renders = 0;

async function render() {
  const mine = ++renders;
  const scoped = live.scope(); // from now on, only the view mounted below may subscribe
  const route = resolve(location.hash);
  if (cleanup) {
    try {
      cleanup();
    } catch (exc) {
      console.error(exc);
    }
    cleanup = null;
  }
  clearError();
  document.title = `OpsMind · ${TITLES[route.page]}`;
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.nav === route.nav);
  if (route.page !== "login" && !session.get()) {
    const known = await identify();
    if (mine !== renders) return; // the user moved on meanwhile
    if (!known) {
      needLogin("");
      return;
    }
  }
  drawWho();
  document.body.dataset.role = session.role();
  if (route.page === "login") {
    live.unsubscribe();
    live.stop();
    cleanup = PAGES.login.mount(view, {
      message: loginMessage,
      onLogin: () => {
        loginMessage = "";
        live.restart();
        go(nextAfterLogin || "/overview");
      },
    });
    return;
  }
  live.start();
  view.replaceChildren();
  live.unsubscribe();
  cleanup = PAGES[route.page].mount(view, { live: scoped }, ...route.params) || null;
}

session.onChange(drawWho);
window.addEventListener("hashchange", render);
if (!location.hash) location.hash = "/overview";
else render();
