// The detail view (#/torrent/<hash>, and ?instance=<id> with several qBittorrent instances):
// every field of one torrent of one instance, live from that instance's per-torrent stream,
// and a speed chart from the history API.

import * as fmt from "./format.js";
import { drawChart } from "./chart.js";
import { setIsolated, setText } from "./dom.js";
import { normalize } from "./dashboard.js";
import { markSignedOut, withToken } from "./stream.js";
import { keyOf, withInstance } from "./instances.js";

const HISTORY_MINUTES = 60;
const HISTORY_REFRESH_MS = 15000;

// [field, label, formatter(rec)] for the fact grid and the info list. A formatter returns our
// own text as a string, or torrent-supplied strings as an array (each shown bidi-isolated).
const STATS = [
  ["dl_speed", "Download speed", (r) => fmt.speed(r.dl_speed)],
  ["up_speed", "Upload speed", (r) => fmt.speed(r.up_speed)],
  ["eta", "ETA", (r) => (r.complete ? "–" : fmt.eta(r.eta))],
  ["ratio", "Ratio", (r) => fmt.ratio(r.ratio)],
  ["downloaded", "Downloaded", (r) => fmt.bytes(r.downloaded)],
  ["amount_left", "Remaining", (r) => fmt.bytes(r.amount_left)],
  ["size", "Size", (r) => fmt.bytes(r.size)],
  ["seeds", "Seeds", (r) => String(r.seeds ?? 0), "peers", "Peers", (r) => String(r.peers ?? 0)],
];
const INFO = [
  ["category", "Category", (r) => (r.category ? [r.category] : "None")],
  ["tags", "Tags", (r) => (r.tags && r.tags.length ? r.tags : "None")],
  ["save_path", "Save path", (r) => (r.save_path ? [r.save_path] : "–")],
  ["added_at", "Added", (r) => fmt.dateTime(r.added_at)],
  ["completed_at", "Completed", (r) => (r.completed_at ? fmt.dateTime(r.completed_at) : "Not yet")],
  ["state", "qBittorrent state", (r) => [r.state]],
  ["complete", "Complete", (r) => (r.complete ? "Yes" : "No")],
  ["hash", "Info-hash", (r) => r.hash],
];

export class Detail {
  constructor(root) {
    this.root = root;
    this.hash = null;
    this.instance = null; // the instance id (null: the server's primary, not known by id)
    this.key = null; // keyOf(instance, hash): what the action controls know it by
    this.instanceName = "";
    this.rec = null;
    this.samples = [];
    this.raf = 0;
    this.histTimer = 0;
    this.fieldEls = {};
    this.afterRender = null; // (rec) => void: the action controls follow the record
    this.onRemoved = null; // (hash) => void
    this.name = root.querySelector("#d-name");
    this.nameText = root.querySelector("#d-name-text"); // a <bdi> in the <h1>
    this.nameToggle = root.querySelector("#d-name-toggle");
    this.nameToggle.addEventListener("click", () => this.expandName(!this.nameExpanded));
    this.nameExpanded = false;
    // The title is clamped to a few lines by CSS; the toggle is offered only when that hides
    // something, which a new name or a new width can change.
    new ResizeObserver(() => this.checkNameClamp()).observe(this.name);
    this.badge = root.querySelector("#d-state");
    this.instLabel = root.querySelector("#d-instance");
    this.bar = root.querySelector("#d-bar");
    this.fill = this.bar.firstElementChild;
    this.pct = root.querySelector("#d-pct");
    this.amount = root.querySelector("#d-amount");
    this.chartBox = root.querySelector("#d-chart");
    this.chartNote = root.querySelector("#d-chart-note");
    this.msg = root.querySelector("#d-message");
    this.body = root.querySelector("#d-body");
    this.build(root.querySelector("#d-stats"), STATS, "stat");
    this.build(root.querySelector("#d-info"), INFO, "info");
    this.resize = new ResizeObserver(() => this.drawChart());
    this.resize.observe(this.chartBox);
  }

  build(parent, spec, cls) {
    for (const [field, label, , field2, label2] of spec) {
      const wrap = document.createElement("div");
      wrap.className = cls;
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      if (field2) {
        // Two small numbers in one cell: "Seeds / peers  48 / 25".
        dt.textContent = `${label} / ${label2.toLowerCase()}`;
        const a = document.createElement("span");
        const b = document.createElement("span");
        dd.append(a, " / ", b);
        this.field(a, field);
        this.field(b, field2);
      } else {
        dt.textContent = label;
        this.field(dd, field);
      }
      wrap.append(dt, dd);
      parent.appendChild(wrap);
    }
  }

  field(node, name) {
    node.dataset.field = name;
    node.dataset.testid = `field-${name}`;
    this.fieldEls[name] = node;
  }

  /** `where`: {multi, name}: several instances (the view names its instance), and its name. */
  show(hash, instance, where) {
    this.hash = hash;
    this.instance = instance;
    this.key = keyOf(instance, hash);
    this.instanceName = where.name || instance || "";
    this.rec = null;
    this.samples = [];
    this.root.dataset.hash = hash;
    if (instance) this.root.dataset.instance = instance;
    else delete this.root.dataset.instance;
    this.instLabel.hidden = !where.multi;
    this.setInstanceName(this.instanceName);
    this.instLabel.title = where.multi ? "qBittorrent instance" : "";
    this.expandName(false);
    this.showName("Loading…");
    this.badge.textContent = "";
    delete this.root.dataset.phase;
    this.setMessage("");
    this.body.hidden = true;
    this.chartBox.replaceChildren();
    this.loadHistory();
    clearInterval(this.histTimer);
    this.histTimer = setInterval(() => this.loadHistory(), HISTORY_REFRESH_MS);
  }

  /** The instance's display name, once known (an address opened before any dashboard). */
  setInstanceName(name) {
    this.instanceName = name;
    setText(this.instLabel, fmt.bidiSafe(name));
  }

  hide() {
    clearInterval(this.histTimer);
    this.histTimer = 0;
    this.hash = null;
    this.key = null;
  }

  /** The title: the torrent's name (or our placeholder), clamped unless expanded. */
  showName(text) {
    const safe = fmt.bidiSafe(text);
    if (this.nameText.textContent === safe) return;
    this.nameText.textContent = safe;
    this.checkNameClamp();
  }

  expandName(expanded) {
    this.nameExpanded = expanded;
    this.name.classList.toggle("expanded", expanded);
    // Unfolded, a huge name scrolls in its box: focusable, so the keyboard can scroll it too.
    if (expanded) {
      this.name.tabIndex = 0;
    } else {
      this.name.removeAttribute("tabindex");
      this.name.scrollTop = 0; // folded again from the top, where the name starts
    }
    this.nameToggle.setAttribute("aria-expanded", String(expanded));
    this.nameToggle.textContent = expanded ? "Show less" : "Show full name";
    this.checkNameClamp();
  }

  checkNameClamp() {
    // Expanded, the toggle stays to fold the name again; folded, only a cut name needs it.
    const clamped = this.name.scrollHeight > this.name.clientHeight + 1;
    this.nameToggle.hidden = !this.nameExpanded && !clamped;
  }

  setMessage(kind) {
    for (const el of this.msg.children) el.hidden = el.dataset.kind !== kind;
    this.msg.hidden = !kind;
    this.msg.dataset.kind = kind;
  }

  /** The per-torrent stream answered 404 or 400: the torrent is not (or no longer) there. */
  notFound() {
    this.rec = null;
    this.body.hidden = true;
    this.showName("Torrent not found");
    this.badge.textContent = "";
    delete this.root.dataset.phase;
    this.setMessage("not-found");
  }

  snapshot(data) {
    const rec = (data.torrents || {})[this.hash];
    if (!rec) {
      this.notFound();
      return;
    }
    this.rec = normalize(this.hash, rec, this.instance);
    this.setMessage("");
    this.schedule();
  }

  diff(d) {
    const f = (d.changed || {})[this.hash];
    if (f) {
      this.rec = this.rec ? Object.assign(this.rec, f) : normalize(this.hash, f, this.instance);
      if (this.msg.dataset.kind === "removed") this.setMessage("");
      if ("dl_speed" in f || "up_speed" in f) this.addLiveSample();
    }
    if ((d.removed || []).includes(this.hash)) {
      this.setMessage("removed");
      if (this.onRemoved) this.onRemoved(this.key);
    }
    this.schedule();
  }

  /** Live speeds join the chart between history loads (the server samples every few s). */
  addLiveSample() {
    const now = Date.now() / 1000;
    const last = this.samples[this.samples.length - 1];
    if (last && now - last.t < 1) return;
    this.samples.push({ t: now, dl_speed: this.rec.dl_speed || 0, up_speed: this.rec.up_speed || 0 });
    if (this.samples.length > 5000) this.samples.splice(0, this.samples.length - 5000);
    this.chartDue = true;
  }

  schedule() {
    if (!this.raf) this.raf = requestAnimationFrame(() => this.render());
  }

  render() {
    this.raf = 0;
    const r = this.rec;
    if (!r) return;
    this.body.hidden = false;
    this.showName(r.name || r.hash);
    document.title = `${fmt.isolate(r.name || r.hash)} – quart-dl`;
    const phase = fmt.phaseOf(r);
    this.root.dataset.phase = phase;
    this.root.classList.toggle("complete", !!r.complete);
    setText(this.badge, fmt.PHASE_LABEL[phase]);
    const p = fmt.percent(r);
    this.fill.style.transform = `scaleX(${p.fraction})`;
    this.bar.setAttribute("aria-valuenow", String(p.value));
    this.bar.setAttribute("aria-valuetext", p.text);
    setText(this.pct, p.text);
    const done = Math.max(0, (r.size || 0) - (r.amount_left || 0));
    setText(this.amount, `${fmt.bytes(done)} of ${fmt.bytes(r.size)}`);
    for (const [field, , f, field2, , f2] of [...STATS, ...INFO]) {
      show(this.fieldEls[field], f(r));
      if (field2) show(this.fieldEls[field2], f2(r));
    }
    if (this.chartDue) {
      this.chartDue = false;
      this.drawChart();
    }
    if (this.afterRender) this.afterRender(r);
  }

  async loadHistory() {
    const hash = this.hash;
    const key = this.key;
    if (!hash) return;
    const path = withInstance(`api/history?minutes=${HISTORY_MINUTES}&hash=${hash}`, this.instance);
    try {
      const res = await fetch(withToken(path), {
        cache: "no-store",
        headers: { Accept: "application/json" },
      });
      if (res.status === 401) markSignedOut();
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = await res.json();
      if (key !== this.key) return;
      this.samples = Array.isArray(body.samples) ? body.samples : [];
      this.chartNote.textContent = "";
    } catch (err) {
      if (key !== this.key) return;
      this.chartNote.textContent = "Speed history is unavailable right now.";
    }
    this.drawChart();
  }

  drawChart() {
    if (!this.hash || !this.chartBox.isConnected || this.root.hidden) return;
    const now = Date.now() / 1000;
    const pts = this.samples.slice();
    // The live value as the newest point, so the chart ends at what the stream says now.
    if (this.rec && (!pts.length || pts[pts.length - 1].t < now - 1)) {
      pts.push({ t: now, dl_speed: this.rec.dl_speed || 0, up_speed: this.rec.up_speed || 0 });
    }
    drawChart(this.chartBox, pts, { now, minutes: HISTORY_MINUTES });
  }
}

/** A formatter's answer: our own text, or torrent-supplied strings each isolated. */
function show(node, value) {
  if (Array.isArray(value)) setIsolated(node, value, ", ");
  else setText(node, value);
}
