// #/login: exchange a user name and password for a session token (POST /api/v1/auth/login).

import { api, session } from "./api.js";
import { fill, h } from "./dom.js";
import { clearError, showError } from "./widgets.js";

export function mount(root, { onLogin, message }) {
  const user = h("input", { type: "text", name: "username", autocomplete: "username", required: true, testid: "login-username" });
  const pass = h("input", {
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
    testid: "login-password",
  });
  const submit = h("button", { type: "submit", class: "btn primary", testid: "login-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "login panel", "aria-label": "sign in" },
    h("h1", {}, "Sign in to OpsMind"),
    message ? h("p", { class: "muted" }, message) : null,
    h("label", {}, "User name", user),
    h("label", {}, "Password", pass),
    submit,
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    try {
      const out = await api.post("/api/v1/auth/login", { username: user.value.trim(), password: pass.value });
      session.set({ token: out.token, name: out.name, role: out.role, expires_at: out.expires_at, auth: true });
      clearError();
      onLogin();
    } catch (err) {
      showError(err, "sign in");
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  fill(root, form);
  user.focus();
  return () => {};
}
