// Hash routes (docs/DASHBOARD.md): #/overview, #/service/<name>, #/incidents, #/incident/<id>, #/scaling,
// #/audit, #/login. A route is a page module's ``mount(root, ctx, ...params)`` returning a cleanup.

export const ROUTES = [
  { pattern: /^\/overview$/, page: "overview", nav: "overview" },
  { pattern: /^\/service\/([^/]+)$/, page: "service", nav: "overview" },
  { pattern: /^\/incidents$/, page: "incidents", nav: "incidents" },
  { pattern: /^\/incident\/([^/]+)$/, page: "incident", nav: "incidents" },
  { pattern: /^\/scaling$/, page: "scaling", nav: "scaling" },
  { pattern: /^\/audit$/, page: "audit", nav: "audit" },
  { pattern: /^\/login$/, page: "login", nav: null },
];

/** The route of a location hash: {page, nav, params} (unknown hashes go to the overview). */
export function resolve(hash) {
  const path = (hash || "").replace(/^#/, "").split("?")[0] || "/overview";
  for (const r of ROUTES) {
    const m = path.match(r.pattern);
    if (m) return { page: r.page, nav: r.nav, params: m.slice(1).map(decodeURIComponent), path };
  }
  return { page: "overview", nav: "overview", params: [], path: "/overview" };
}

export function go(path) {
  if (location.hash === `#${path}`) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = path;
}

export function href(page, ...params) {
  return `#/${[page, ...params.map(encodeURIComponent)].join("/")}`;
}
