// A time-series chart over uPlot (canvas: no DOM per point, 10,000 points per series draw in a few ms).
// Each series keeps its own timestamps; the chart aligns them for uPlot. Anomaly markers and forecast bands
// are drawn on the canvas by a hook, so they need no extra points and do not disturb the alignment.

import uPlot from "./uPlot.esm.js";
import { fmtNum, h } from "./dom.js";

// Okabe-Ito: distinguishable with every common colour-vision deficiency.
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
const MARKER = "#D55E00";
const BAND = "rgba(86, 180, 233, 0.25)";
const BAND_LINE = "#0072B2";

/** Merge series with their own sorted timestamps into uPlot's aligned form [xs, ys0, ys1, ...]. */
export function align(list) {
  if (list.length === 1) return [list[0].xs, list[0].ys];
  const idx = list.map(() => 0);
  const xs = [];
  const out = list.map(() => []);
  for (;;) {
    let t = Infinity;
    for (let k = 0; k < list.length; k++) if (idx[k] < list[k].xs.length && list[k].xs[idx[k]] < t) t = list[k].xs[idx[k]];
    if (t === Infinity) break;
    xs.push(t);
    for (let k = 0; k < list.length; k++) {
      if (idx[k] < list[k].xs.length && list[k].xs[idx[k]] === t) {
        out[k].push(list[k].ys[idx[k]]);
        idx[k] += 1;
      } else out[k].push(null);
    }
  }
  return [xs, ...out];
}

export class Chart {
  /**
   * @param {HTMLElement} parent
   * @param {{id: string, title: string, unit?: string, series: {label: string, color?: string,
   *          dash?: number[], width?: number, step?: boolean}[], height?: number, windowS?: number}} opts
   */
  constructor(parent, opts) {
    this.opts = opts;
    this.data = opts.series.map(() => ({ xs: [], ys: [] }));
    this.markers = [];
    this.band = null;
    this.pending = false;
    this.caption = h("p", { class: "chart-note" });
    this.box = h("div", { class: "chart-canvas" });
    this.el = h(
      "figure",
      { class: "chart", testid: `chart-${opts.id}` },
      h("figcaption", {}, opts.title, opts.unit ? h("span", { class: "unit" }, ` (${opts.unit})`) : null),
      this.box,
      this.caption,
    );
    parent.append(this.el);
    const width = Math.max(240, this.box.clientWidth || parent.clientWidth || 600);
    this.u = new uPlot(this.options(width), [[], ...opts.series.map(() => [])], this.box);
    this.resizer = new ResizeObserver(() => {
      const w = Math.max(240, this.box.clientWidth);
      if (Math.abs(w - this.u.width) > 2) this.u.setSize({ width: w, height: this.u.height });
    });
    this.resizer.observe(this.box);
  }

  options(width) {
    const series = [
      {},
      ...this.opts.series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: s.width || 1.5,
        dash: s.dash,
        spanGaps: false,
        points: { show: false },
        paths: s.step ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: (u, v) => fmtNum(v),
      })),
    ];
    return {
      width,
      height: this.opts.height || 220,
      series,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: {
        x: { time: true, range: (u, min, max) => this.xRange(min, max) },
        y: { range: (u, min, max) => this.yRange(min, max) },
      },
      // Time ticks in the 24-hour clock the rest of the page uses (uPlot's default is "3pm"), spaced so
      // that labels with a date do not run into each other.
      axes: [{ space: 90, values: (u, vals) => timeTicks(vals) }, { size: 60, values: (u, vals) => vals.map((v) => fmtNum(v)) }],
      hooks: { draw: [(u) => this.drawOverlay(u), (u) => this.drawn(u)] },
    };
  }

  xRange(min, max) {
    let lo = min;
    let hi = max;
    if (this.band && this.band.ts.length) hi = Math.max(hi ?? -Infinity, this.band.ts[this.band.ts.length - 1]);
    if (lo === null || lo === undefined || !Number.isFinite(lo)) lo = hi - 3600;
    if (lo === hi) return [lo - 60, hi + 60];
    return [lo, hi];
  }

  yRange(min, max) {
    let lo = min;
    let hi = max;
    const consider = (v) => {
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      lo = lo === null || lo === undefined || !Number.isFinite(lo) ? v : Math.min(lo, v);
      hi = hi === null || hi === undefined || !Number.isFinite(hi) ? v : Math.max(hi, v);
    };
    if (this.band) {
      this.band.lo.forEach(consider);
      this.band.hi.forEach(consider);
    }
    this.markers.forEach((m) => consider(m.v));
    if (lo === null || lo === undefined || !Number.isFinite(lo)) return [0, 1];
    if (lo === hi) return [lo - Math.abs(lo || 1) * 0.1, hi + Math.abs(hi || 1) * 0.1];
    const pad = (hi - lo) * 0.05;
    return [lo >= 0 && lo - pad < 0 ? 0 : lo - pad, hi + pad];
  }

  drawOverlay(u) {
    const { ctx } = u;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const X = (t) => u.valToPos(t, "x", true);
    const Y = (v) => u.valToPos(v, "y", true);
    const b = this.band;
    if (b && b.ts.length) {
      ctx.fillStyle = BAND;
      ctx.beginPath();
      let started = false;
      for (let i = 0; i < b.ts.length; i++) {
        if (b.hi[i] === null) continue;
        if (!started) ctx.moveTo(X(b.ts[i]), Y(b.hi[i]));
        else ctx.lineTo(X(b.ts[i]), Y(b.hi[i]));
        started = true;
      }
      for (let i = b.ts.length - 1; i >= 0; i--) if (b.lo[i] !== null) ctx.lineTo(X(b.ts[i]), Y(b.lo[i]));
      ctx.closePath();
      ctx.fill();
      if (b.mean) {
        ctx.strokeStyle = BAND_LINE;
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.beginPath();
        let first = true;
        for (let i = 0; i < b.ts.length; i++) {
          if (b.mean[i] === null) continue;
          if (first) ctx.moveTo(X(b.ts[i]), Y(b.mean[i]));
          else ctx.lineTo(X(b.ts[i]), Y(b.mean[i]));
          first = false;
        }
        ctx.stroke();
        ctx.setLineDash([]);
      }
    }
    // Anomalies: filled triangles with a dark outline, so they read as a shape and not only as a colour.
    const r = 5 * devicePixelRatio;
    ctx.fillStyle = MARKER;
    ctx.strokeStyle = "#000";
    ctx.lineWidth = devicePixelRatio;
    for (const m of this.markers) {
      if (m.v === null || m.v === undefined) continue;
      const x = X(m.t);
      const y = Y(m.v);
      ctx.beginPath();
      ctx.moveTo(x, y - r);
      ctx.lineTo(x + r, y + r * 0.8);
      ctx.lineTo(x - r, y + r * 0.8);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
    }
    ctx.restore();
  }

  /** After every draw, what the canvas now shows, on the figure: ``data-drawn-points`` (values drawn, all
   * series) and ``data-drawn-last`` (the last timestamp). `opsmind bench ui` times renders by them. */
  drawn(u) {
    let n = 0;
    for (let s = 1; s < u.data.length; s++) for (const v of u.data[s]) if (v !== null && v !== undefined) n++;
    const xs = u.data[0];
    this.el.dataset.drawnPoints = String(n);
    this.el.dataset.drawnLast = xs.length ? String(xs[xs.length - 1]) : "";
  }

  /** Replace series ``i``'s points (timestamps ascending). */
  setSeries(i, xs, ys) {
    this.data[i] = { xs: Array.from(xs), ys: Array.from(ys, (v) => (v === undefined ? null : v)) };
    this.trim(i);
    this.redraw();
  }

  /** Add live points [[t, v], ...] to series ``i``; points not after its last one are ignored. */
  append(i, points) {
    const d = this.data[i];
    let last = d.xs.length ? d.xs[d.xs.length - 1] : -Infinity;
    for (const [t, v] of points) {
      if (t <= last) continue;
      d.xs.push(t);
      d.ys.push(v === undefined || (typeof v === "number" && !Number.isFinite(v)) ? null : v);
      last = t;
    }
    this.trim(i);
    this.redraw();
  }

  trim(i) {
    const w = this.opts.windowS;
    const d = this.data[i];
    if (!w || !d.xs.length) return;
    const cut = d.xs[d.xs.length - 1] - w;
    let k = 0;
    while (k < d.xs.length && d.xs[k] < cut) k++;
    if (k) {
      d.xs.splice(0, k);
      d.ys.splice(0, k);
    }
  }

  /** Anomaly markers [{t, v}] (v: the value where the marker sits). */
  setMarkers(markers) {
    this.markers = markers;
    this.redraw();
  }

  addMarker(m) {
    this.markers.push(m);
    this.redraw();
  }

  /** A forecast band {ts, lo, hi, mean?} drawn behind the series; null removes it. */
  setBand(band) {
    this.band = band;
    this.redraw();
  }

  note(text) {
    this.caption.textContent = text || "";
  }

  /** The value of series ``i`` at the point nearest to ``t`` (to place an anomaly that has none). */
  valueAt(i, t) {
    const { xs, ys } = this.data[i];
    if (!xs.length) return null;
    let lo = 0;
    let hi = xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return ys[lo];
  }

  points() {
    return this.data.reduce((n, d) => n + d.xs.length, 0);
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      if (!this.u) return;
      this.u.setData(align(this.data));
    });
  }

  /** Draw now (tests and benchmarks), instead of at the next animation frame. */
  flush() {
    this.pending = false;
    this.u.setData(align(this.data));
  }

  destroy() {
    this.resizer.disconnect();
    this.u.destroy();
    this.u = null;
    this.el.remove();
  }
}

/** Tick labels for Unix-second ``vals``: HH:MM (HH:MM:SS under ten minutes), with the date across days. */
export function timeTicks(vals) {
  const span = vals.length > 1 ? vals[vals.length - 1] - vals[0] : 0;
  const pad = (n) => String(n).padStart(2, "0");
  return vals.map((v) => {
    const d = new Date(v * 1000);
    const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}${span < 600 ? `:${pad(d.getSeconds())}` : ""}`;
    return span >= 86400 ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}` : clock;
  });
}
