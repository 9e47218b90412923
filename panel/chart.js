// A small inline SVG line chart for download and upload speed over time.
// Drawn at the container's real pixel width (redrawn on resize), so text is never stretched.

import * as fmt from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
const WINDOWS = [5, 15, 30, 60, 180, 360, 720, 1440];
const MARKS = {
  5: [5, 4, 3, 2, 1, 0],
  15: [15, 10, 5, 0],
  30: [30, 20, 10, 0],
  60: [60, 45, 30, 15, 0],
};

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function niceStep(raw) {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  const n = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return n * p;
}

/** Top of the y axis and grid lines, in bytes/s, with labels in one binary unit. */
function yScale(max) {
  if (!(max > 0)) max = 1024 * 100; // an idle chart still gets a sensible axis
  let u = 0;
  while (max / 1024 ** u >= 1024 && u < UNITS.length - 1) u += 1;
  const m = max / 1024 ** u;
  const step = niceStep(m / 4);
  const top = Math.ceil(m / step) * step;
  const ticks = [];
  for (let v = 0; v <= top + step / 2; v += step) {
    ticks.push({ value: v * 1024 ** u, label: `${+v.toFixed(2)} ${UNITS[u]}/s` });
  }
  return { top: top * 1024 ** u, ticks };
}

/** Paths that break where samples are missing (gap longer than `gap` seconds). */
function linePath(points, x, y, key, gap) {
  let d = "";
  let prevT = null;
  for (const s of points) {
    const cmd = prevT === null || s.t - prevT > gap ? "M" : "L";
    d += `${cmd}${x(s.t).toFixed(1)},${y(s[key]).toFixed(1)}`;
    prevT = s.t;
  }
  return d;
}

function areaPaths(points, x, y, key, gap, base) {
  const segs = [];
  let cur = [];
  let prevT = null;
  for (const s of points) {
    if (prevT !== null && s.t - prevT > gap && cur.length) {
      segs.push(cur);
      cur = [];
    }
    cur.push(s);
    prevT = s.t;
  }
  if (cur.length) segs.push(cur);
  return segs
    .filter((seg) => seg.length > 1)
    .map((seg) => {
      let d = `M${x(seg[0].t).toFixed(1)},${base}`;
      for (const s of seg) d += `L${x(s.t).toFixed(1)},${y(s[key]).toFixed(1)}`;
      d += `L${x(seg[seg.length - 1].t).toFixed(1)},${base}Z`;
      return d;
    })
    .join("");
}

/**
 * Draw samples ([{t, dl_speed, up_speed}], oldest first, t in unix seconds) covering the
 * last `minutes` up to `now` into `box` (an element; its content is replaced).
 */
export function drawChart(box, samples, { now, minutes: maxMinutes = 60 } = {}) {
  // Zoom to the data: a torrent added two minutes ago gets a five-minute axis, not a sliver.
  const t1s = now ?? Date.now() / 1000;
  const first = samples.length ? samples[0].t : t1s;
  const span = (t1s - first) / 60;
  const minutes = WINDOWS.find((w) => w >= span && w <= maxMinutes) || maxMinutes;
  const width = Math.max(240, Math.floor(box.clientWidth || 600));
  const height = 180;
  const pad = { l: 70, r: 8, t: 10, b: 22 };
  const t1 = t1s;
  const t0 = t1 - minutes * 60;
  const pts = samples.filter((s) => s.t >= t0 - 60 && s.t <= t1 + 5);
  const max = pts.reduce((m, s) => Math.max(m, s.dl_speed || 0, s.up_speed || 0), 0);
  const ys = yScale(max * 1.05);
  const iw = width - pad.l - pad.r;
  const ih = height - pad.t - pad.b;
  const x = (t) => pad.l + ((Math.max(t0, Math.min(t1, t)) - t0) / (t1 - t0)) * iw;
  const y = (v) => pad.t + ih - (Math.max(0, v || 0) / ys.top) * ih;
  const base = (pad.t + ih).toFixed(1);

  // Typical spacing between samples; a gap of more than three of them (and 30 s) is a break.
  const dts = [];
  for (let i = 1; i < pts.length; i += 1) dts.push(pts[i].t - pts[i - 1].t);
  dts.sort((a, b) => a - b);
  const gap = Math.max(30, 3 * (dts[dts.length >> 1] || 10));

  const svg = el("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, class: "chart-svg",
    role: "img", "aria-label": chartSummary(pts, minutes),
  });
  const grid = el("g", { class: "grid" }, svg);
  for (const tk of ys.ticks) {
    const yy = y(tk.value).toFixed(1);
    el("line", { x1: pad.l, x2: width - pad.r, y1: yy, y2: yy }, grid);
    const t = el("text", { x: pad.l - 8, y: Number(yy) + 4, class: "ylabel", "text-anchor": "end" }, grid);
    t.textContent = tk.value > 0 ? tk.label : "0";
  }
  const xl = el("g", { class: "xlabels" }, svg);
  const marks = MARKS[minutes] || [minutes, minutes / 2, 0];
  let lastRight = -Infinity;
  for (const m of marks) {
    const label = m === 0 ? "now" : m >= 120 && m % 60 === 0 ? `−${m / 60} h` : `−${m} min`;
    const anchor = m === minutes ? "start" : m === 0 ? "end" : "middle";
    const w = label.length * 6.5; // rough width of 11 px text
    const cx = x(t1 - m * 60);
    const left = anchor === "start" ? cx : anchor === "end" ? cx - w : cx - w / 2;
    if (left < lastRight + 8 && m !== 0) continue; // no overlapping labels on narrow charts
    lastRight = left + w;
    const t = el("text", { x: cx, y: height - 6, "text-anchor": anchor }, xl);
    t.textContent = label;
  }
  if (pts.length) {
    el("path", { d: areaPaths(pts, x, y, "dl_speed", gap, base), class: "area dl" }, svg);
    el("path", { d: linePath(pts, x, y, "up_speed", gap), class: "line up" }, svg);
    el("path", { d: linePath(pts, x, y, "dl_speed", gap), class: "line dl" }, svg);
  }

  // Hover read-out.
  const cursor = el("line", { y1: pad.t, y2: pad.t + ih, class: "cursor", visibility: "hidden" }, svg);
  const tip = document.createElement("div");
  tip.className = "chart-tip";
  tip.hidden = true;
  svg.addEventListener("pointermove", (ev) => {
    if (!pts.length) return;
    const rect = svg.getBoundingClientRect();
    const px = ev.clientX - rect.left;
    const t = t0 + ((px - pad.l) / iw) * (t1 - t0);
    let best = pts[0];
    for (const s of pts) if (Math.abs(s.t - t) < Math.abs(best.t - t)) best = s;
    const cx = x(best.t);
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.setAttribute("visibility", "visible");
    const time = new Date(best.t * 1000).toLocaleTimeString();
    tip.textContent = `${time}  ↓ ${fmt.speed(best.dl_speed)}  ↑ ${fmt.speed(best.up_speed)}`;
    tip.hidden = false;
    tip.style.left = `${Math.min(Math.max(cx, 80), width - 80)}px`;
  });
  svg.addEventListener("pointerleave", () => {
    cursor.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });

  box.replaceChildren(svg, tip);
  if (!pts.length) {
    const msg = document.createElement("div");
    msg.className = "chart-empty";
    msg.textContent = "No speed samples yet";
    box.appendChild(msg);
  }
}

function chartSummary(pts, minutes) {
  if (!pts.length) return "Speed chart: no samples yet";
  const last = pts[pts.length - 1];
  const peak = pts.reduce((m, s) => Math.max(m, s.dl_speed || 0), 0);
  return `Speed chart, last ${minutes} minutes: now ${fmt.speed(last.dl_speed)} down, ${fmt.speed(last.up_speed)} up; peak ${fmt.speed(peak)} down`;
}
