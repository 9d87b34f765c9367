// The service map: an SVG of the dependency graph, each service drawn by its health. Status is told three
// ways (colour from a colour-blind-safe palette, a shape, and text), never by colour alone.

import { s } from "./dom.js";
import { href } from "./router.js";

export const STATUS_STYLE = {
  ok: { color: "#0072B2", shape: "circle", label: "healthy" },
  degraded: { color: "#E69F00", shape: "triangle", label: "degraded" },
  critical: { color: "#D55E00", shape: "square", label: "critical" },
  unknown: { color: "#8a8a8a", shape: "dashed", label: "unknown" },
};

const NODE_W = 196;
const NODE_H = 74;
const GAP_X = 60;
const GAP_Y = 24;

/** Columns by longest call path from the entry services (callers nobody calls); a grid without edges. */
export function layout(services, edges) {
  const pos = new Map();
  if (!edges.length) {
    const cols = Math.max(1, Math.min(4, services.length));
    services.forEach((name, i) => pos.set(name, { col: i % cols, row: Math.floor(i / cols) }));
    return pos;
  }
  const callees = new Map(services.map((n) => [n, []]));
  edges.forEach((e) => callees.get(e.from)?.push(e.to));
  const depth = new Map(services.map((n) => [n, 0]));
  // Longest-path layering; bounded passes so a cycle cannot loop forever.
  for (let pass = 0; pass < services.length; pass++) {
    let changed = false;
    for (const e of edges) {
      const d = (depth.get(e.from) ?? 0) + 1;
      if (d > (depth.get(e.to) ?? 0) && d < services.length) {
        depth.set(e.to, d);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const rows = new Map();
  for (const name of services) {
    const col = depth.get(name) ?? 0;
    const row = rows.get(col) ?? 0;
    rows.set(col, row + 1);
    pos.set(name, { col, row });
  }
  return pos;
}

function shape(kind, color, cx, cy) {
  const r = 11;
  const common = { fill: color, stroke: "#111", "stroke-width": 1.5, "aria-hidden": "true" };
  if (kind === "triangle")
    return s("polygon", { ...common, points: `${cx},${cy - r} ${cx + r},${cy + r * 0.8} ${cx - r},${cy + r * 0.8}` });
  if (kind === "square") return s("rect", { ...common, x: cx - r, y: cy - r, width: 2 * r, height: 2 * r });
  if (kind === "dashed")
    return s("circle", { ...common, fill: "#fff", stroke: color, "stroke-dasharray": "3 3", cx, cy, r });
  return s("circle", { ...common, cx, cy, r });
}

/**
 * @param {{services: string[], edges: {from: string, to: string}[]}} topo
 * @param {Map<string, {score: number|null, status: string}>} health
 * @param {Map<string, number>} openIncidents service -> open incidents
 */
export function serviceMap(topo, health, openIncidents) {
  const pos = layout(topo.services, topo.edges);
  let cols = 1;
  let rows = 1;
  pos.forEach((p) => {
    cols = Math.max(cols, p.col + 1);
    rows = Math.max(rows, p.row + 1);
  });
  const gapX = topo.edges.length ? GAP_X : GAP_Y;
  const width = cols * NODE_W + (cols - 1) * gapX + 20;
  const height = rows * NODE_H + (rows - 1) * GAP_Y + 20;
  const at = (name) => {
    const p = pos.get(name);
    return { x: 10 + p.col * (NODE_W + gapX), y: 10 + p.row * (NODE_H + GAP_Y) };
  };
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "service-map",
    testid: "service-map",
    role: "group",
    "aria-label": `service map: ${topo.services.length} services, ${topo.edges.length} dependencies`,
    preserveAspectRatio: "xMinYMin meet",
  });
  svg.style.maxWidth = `${Math.round(width * 1.3)}px`; // wide screens: more room, not giant boxes
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#555" }),
      ),
    ),
  );
  for (const e of topo.edges) {
    if (!pos.has(e.from) || !pos.has(e.to)) continue;
    const a = at(e.from);
    const b = at(e.to);
    const forward = b.x > a.x;
    const x1 = forward ? a.x + NODE_W : a.x + NODE_W / 2;
    const y1 = forward ? a.y + NODE_H / 2 : a.y + NODE_H;
    const x2 = forward ? b.x : b.x + NODE_W / 2;
    const y2 = forward ? b.y + NODE_H / 2 : b.y;
    svg.append(
      s(
        "line",
        { x1, y1, x2, y2, class: "edge", stroke: "#555", "stroke-width": 1.2, "marker-end": "url(#arrow)" },
        s("title", {}, `${e.from} calls ${e.to}`),
      ),
    );
  }
  for (const name of topo.services) {
    const { x, y } = at(name);
    const hs = health.get(name);
    const status = hs?.status && STATUS_STYLE[hs.status] ? hs.status : "unknown";
    const st = STATUS_STYLE[status];
    const score = hs?.score === null || hs?.score === undefined ? "?" : Math.round(hs.score);
    const open = openIncidents.get(name) || 0;
    const label = `${name}: health ${score}, ${st.label}${open ? `, ${open} open incident${open > 1 ? "s" : ""}` : ""}`;
    const node = s(
      "a",
      {
        href: href("service", name),
        testid: `service-node-${name}`,
        class: `node status-${status}`,
        "data-status": status,
        "aria-label": label,
      },
      s("title", {}, label),
      s("rect", {
        x,
        y,
        width: NODE_W,
        height: NODE_H,
        rx: 8,
        fill: "#fff",
        stroke: st.color,
        "stroke-width": status === "ok" ? 2 : 4,
      }),
      shape(st.shape, st.color, x + 20, y + 24),
      s("text", { x: x + 38, y: y + 29, class: "node-name" }, name),
      s("text", { x: x + 12, y: y + 58, class: "node-status" }, `${score}/100 · ${st.label}`),
    );
    if (open) {
      node.append(
        s("rect", { x: x + NODE_W - 40, y: y + 44, width: 32, height: 20, rx: 10, fill: "#111" }),
        s("text", { x: x + NODE_W - 24, y: y + 58, class: "node-badge", "text-anchor": "middle" }, `!${open}`),
      );
    }
    svg.append(node);
  }
  return svg;
}

export function legend() {
  const items = Object.entries(STATUS_STYLE).map(([, st], i) => {
    const g = s("g", { transform: `translate(${i * 120}, 0)` });
    g.append(shape(st.shape, st.color, 12, 14), s("text", { x: 28, y: 19 }, st.label));
    return g;
  });
  return s("svg", { class: "map-legend", viewBox: "0 0 480 28", role: "img", "aria-label": "legend" }, items);
}
