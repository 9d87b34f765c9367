// The REST client: every call carries the session's bearer token; errors carry the server's reason.

const KEY = "opsmind.session";
const ROLES = ["viewer", "operator", "admin"];

/** The signed-in user, kept in sessionStorage: {token, name, role, expires_at} or null. */
export const session = {
  get() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      return null;
    }
  },
  set(value) {
    sessionStorage.setItem(KEY, JSON.stringify(value));
    listeners.forEach((fn) => fn(value));
  },
  clear() {
    sessionStorage.removeItem(KEY);
    listeners.forEach((fn) => fn(null));
  },
  token() {
    return this.get()?.token || null;
  },
  role() {
    return this.get()?.role || "viewer";
  },
  name() {
    return this.get()?.name || "anonymous";
  },
  /** Whether the user's role reaches ``role`` (viewer < operator < admin). */
  can(role = "operator") {
    return ROLES.indexOf(this.role()) >= ROLES.indexOf(role);
  },
  onChange(fn) {
    listeners.add(fn);
  },
};
const listeners = new Set();

/** An HTTP error with the server's reason (the problem document's ``detail``). */
export class ApiError extends Error {
  constructor(status, detail, method, path) {
    super(`${method} ${path}: ${status} ${detail}`);
    this.status = status;
    this.detail = detail;
    this.method = method;
    this.path = path;
  }
}

const unauthorizedHandlers = new Set();
/** ``fn(error)`` is called on every 401 (the page then asks for a login). */
export function onUnauthorized(fn) {
  unauthorizedHandlers.add(fn);
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

export async function request(method, path, { body, params } = {}) {
  const headers = { Accept: "application/json" };
  const token = session.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = path + query(params);
  let resp;
  try {
    resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (exc) {
    throw new ApiError(0, `cannot reach the server (${exc.message})`, method, path);
  }
  const type = resp.headers.get("content-type") || "";
  const data = type.includes("json") ? await resp.json().catch(() => null) : await resp.text();
  if (!resp.ok) {
    const detail =
      (data && typeof data === "object" && (data.detail || data.title)) ||
      (typeof data === "string" && data) ||
      resp.statusText;
    const err = new ApiError(resp.status, typeof detail === "string" ? detail : JSON.stringify(detail), method, path);
    if (resp.status === 401) unauthorizedHandlers.forEach((fn) => fn(err));
    throw err;
  }
  return data;
}

export const api = {
  get: (path, params) => request("GET", path, { params }),
  post: (path, body, params) => request("POST", path, { body, params }),
  put: (path, body) => request("PUT", path, { body }),
  del: (path, params) => request("DELETE", path, { params }),
};

/** ``GET`` that answers ``fallback`` instead of throwing for the listed statuses (a route not there yet,
 * self-healing disabled): parts of a page that are optional stay quiet. */
export async function getOptional(path, params, fallback = null, statuses = [404, 503]) {
  try {
    return await api.get(path, params);
  } catch (err) {
    if (err instanceof ApiError && statuses.includes(err.status)) return fallback;
    throw err;
  }
}

export const enc = encodeURIComponent;
