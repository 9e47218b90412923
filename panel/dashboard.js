// The dashboard: one row per torrent of every qBittorrent instance, kept in step with the
// stream (protocol v2: every instance in one stream) by diffs.
//
// A torrent is its instance and its hash (instances.js keyOf): the same hash in two
// instances is two rows. With several instances the rows get an instance column, the toolbar
// instance chips, the summary a line per instance, and the rows of an instance that is down
// are marked stale (that instance's data only: the others' rows stay as they are). With one
// instance all of that stays hidden and the dashboard looks as it did before instances.
//
// DOM work is proportional to what changed: records live in a Map, rows in another Map
// (key -> Row), updates are batched into one requestAnimationFrame, a row only writes the
// cells whose text changed, and the order is recomputed only when a diff touched the sorted
// field (or the filter's), then applied with the fewest moves (longest increasing subsequence).
// Rows that are filtered out stay detached and are brought up to date when shown again.

import * as fmt from "./format.js";
import { setIsolated } from "./dom.js";
import { debugExtra } from "./stream.js";
import { detailAddress, health, keyOf, sumTransfer } from "./instances.js";

const COLUMNS = [
  { key: "name", label: "Name", cls: "c-name" },
  { key: "instance", label: "Instance", cls: "c-inst" },
  { key: "progress", label: "Progress", cls: "c-progress" },
  { key: "phase", label: "State", cls: "c-state" },
  { key: "dl_speed", label: "Down", cls: "c-dl num", desc: true },
  { key: "up_speed", label: "Up", cls: "c-up num", desc: true },
  { key: "eta", label: "ETA", cls: "c-eta num" },
  { key: "size", label: "Size", cls: "c-size num", desc: true },
  { key: "ratio", label: "Ratio", cls: "c-ratio num", desc: true },
];
/** The instance filter that shows every instance (no id is empty). */
const ALL = "";
const SORT_KEYS = new Set(["added_at", ...COLUMNS.map((c) => c.key)]);

const DEFAULTS = {
  name: "",
  state: "unknown",
  progress: 0,
  complete: false,
  size: 0,
  downloaded: 0,
  amount_left: 0,
  dl_speed: 0,
  up_speed: 0,
  eta: null,
  ratio: 0,
  seeds: 0,
  peers: 0,
  category: "",
  tags: [],
  save_path: "",
  added_at: 0,
  completed_at: null,
};

/** A record with every field (defaults for the missing ones), its hash, instance and key. */
export function normalize(hash, rec, instance = null) {
  return { ...DEFAULTS, ...rec, hash, instance, key: keyOf(instance, hash) };
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
const PHASE_RANK = Object.fromEntries(fmt.PHASES.map((p, i) => [p, i]));

function sortValue(rec, key, order) {
  switch (key) {
    case "instance":
      return order.get(rec.instance) ?? 0;
    case "progress":
      return rec.complete ? 1 : Math.min(rec.progress || 0, 0.999);
    case "phase":
      return PHASE_RANK[fmt.phaseOf(rec)];
    case "eta":
      return rec.eta === null || rec.eta === undefined || rec.eta < 0 ? Infinity : rec.eta;
    default:
      return rec[key] ?? 0;
  }
}

/** `order`: instance id -> its place in the configured order (the instance column sorts by it). */
function comparator(key, dir, order) {
  const sign = dir === "desc" ? -1 : 1;
  if (key === "name") {
    return (a, b) => sign * collator.compare(a.name, b.name) || (a.key < b.key ? -1 : 1);
  }
  return (a, b) => {
    const va = sortValue(a, key, order);
    const vb = sortValue(b, key, order);
    if (va !== vb) {
      // Unknown ETAs stay last in both directions.
      if (va === Infinity) return 1;
      if (vb === Infinity) return -1;
      return sign * (va < vb ? -1 : 1);
    }
    return collator.compare(a.name, b.name) || (a.key < b.key ? -1 : 1);
  };
}

/** Indices (into seq) of one longest strictly increasing subsequence, ignoring -1 entries. */
function lisIndices(seq) {
  const tails = []; // index into seq of the smallest tail of each length
  const prev = new Array(seq.length).fill(-1);
  for (let i = 0; i < seq.length; i += 1) {
    const v = seq[i];
    if (v < 0) continue;
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seq[tails[mid]] < v) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const keep = new Set();
  let k = tails.length ? tails[tails.length - 1] : -1;
  while (k >= 0) {
    keep.add(k);
    k = prev[k];
  }
  return keep;
}

let template = null;
function rowTemplate() {
  if (template) return template;
  const t = document.createElement("template");
  t.innerHTML =
    '<div class="row" role="row" data-testid="torrent-row">' +
    '<div role="cell" class="c-sel act-only"><input type="checkbox" data-testid="torrent-select"></div>' +
    '<div role="cell" class="c-name"><a class="name" data-testid="torrent-name"><bdi></bdi></a>' +
    '<span class="meta" data-testid="torrent-meta"></span></div>' +
    '<div role="cell" class="c-progress"><div class="bar" role="progressbar" aria-valuemin="0" ' +
    'aria-valuemax="100" data-testid="torrent-progress"><div class="fill"></div></div>' +
    '<span class="pct" data-testid="torrent-progress-text"></span></div>' +
    '<div role="cell" class="c-state"><span class="badge" data-testid="torrent-state"></span>' +
    '<button type="button" class="act-status" data-testid="torrent-action" hidden></button></div>' +
    '<div role="cell" class="c-size num" data-testid="torrent-size"></div>' +
    '<div class="facts">' +
    '<div role="cell" class="c-inst" data-testid="torrent-instance"></div>' +
    '<div role="cell" class="c-dl num" data-label="↓" data-testid="torrent-dl"></div>' +
    '<div role="cell" class="c-up num" data-label="↑" data-testid="torrent-up"></div>' +
    '<div role="cell" class="c-eta num" data-label="ETA" data-testid="torrent-eta"></div>' +
    '<div role="cell" class="c-ratio num" data-label="Ratio" data-testid="torrent-ratio"></div>' +
    "</div>" +
    '<div role="cell" class="c-act act-only">' +
    '<button type="button" class="icon-btn" data-testid="torrent-toggle"><svg viewBox="0 0 16 16" aria-hidden="true"><path/></svg></button>' +
    '<button type="button" class="icon-btn" data-testid="torrent-menu" aria-haspopup="menu" aria-expanded="false">' +
    '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="3.5" cy="8" r="1.4"/><circle cx="8" cy="8" r="1.4"/><circle cx="12.5" cy="8" r="1.4"/></svg></button>' +
    "</div>" +
    "</div>";
  template = t.content.firstChild;
  return template;
}

class Row {
  constructor(rec) {
    const { key, hash, instance } = rec;
    const el = rowTemplate().cloneNode(true);
    el.dataset.hash = hash;
    el.dataset.key = key;
    if (instance) el.dataset.instance = instance;
    const [cSel, cName, cProg, cState, cSize, facts, cAct] = el.children;
    const [cInst, cDl, cUp, cEta, cRatio] = facts.children;
    this.el = el;
    this.check = cSel.firstChild;
    this.check.setAttribute("aria-labelledby", `n-${key}`);
    this.status = cState.lastChild;
    [this.toggle, this.menu] = cAct.children;
    this.toggle.id = `t-${key}`;
    this.menu.id = `m-${key}`;
    this.menu.setAttribute("aria-label", "More actions");
    this.name = cName.firstChild;
    this.name.id = `n-${key}`;
    this.nameText = this.name.firstChild; // a <bdi>: the name's direction stays inside it
    this.meta = cName.lastChild;
    this.bar = cProg.firstChild;
    this.bar.setAttribute("aria-labelledby", this.name.id);
    this.fill = this.bar.firstChild;
    this.pct = cProg.lastChild;
    this.badge = cState.firstChild;
    this.inst = cInst;
    this.cells = { dl: cDl, up: cUp, eta: cEta, size: cSize, ratio: cRatio };
    this.last = {};
  }

  set(key, node, text) {
    if (this.last[key] !== text) {
      this.last[key] = text;
      node.textContent = text;
    }
  }

  /** `where`: {multi, name, down} of the record's instance (see Dashboard.where). */
  render(rec, ui, where) {
    const L = this.last;
    if (ui) this.renderActions(rec, ui);
    const href = detailAddress(rec.hash, rec.instance, where.multi);
    if (L.href !== href) {
      L.href = href;
      this.name.href = href;
    }
    if (L.instName !== where.name) {
      L.instName = where.name;
      this.inst.textContent = fmt.bidiSafe(where.name);
    }
    // Only that instance's rows: its qBittorrent is down, what they show is its last word.
    const stale = where.multi && where.down;
    if (L.stale !== stale) {
      L.stale = stale;
      this.el.dataset.stale = String(stale);
      this.el.title = stale ? `qBittorrent “${fmt.bidiSafe(where.name)}” is not answering: last known values` : "";
    }
    const name = rec.name || rec.hash;
    if (L.name !== name) {
      L.name = name;
      this.nameText.textContent = fmt.bidiSafe(name);
      this.name.title = fmt.isolate(name); // the whole name, however many lines it would take
    }
    setIsolated(this.meta, [rec.category, ...(rec.tags || [])].filter(Boolean), " · ");
    const p = fmt.percent(rec);
    if (L.frac !== p.fraction) {
      L.frac = p.fraction;
      this.fill.style.transform = `scaleX(${p.fraction})`;
    }
    if (L.pv !== p.value) {
      L.pv = p.value;
      this.bar.setAttribute("aria-valuenow", String(p.value));
      this.bar.setAttribute("aria-valuetext", p.text);
    }
    this.set("pct", this.pct, p.text);
    const phase = fmt.phaseOf(rec);
    if (L.phase !== phase) {
      L.phase = phase;
      this.el.dataset.phase = phase;
    }
    const complete = !!rec.complete;
    if (L.complete !== complete) {
      L.complete = complete;
      this.el.classList.toggle("complete", complete);
    }
    this.set("badge", this.badge, fmt.PHASE_LABEL[phase]);
    if (L.rawState !== rec.state) {
      L.rawState = rec.state;
      this.badge.title = `qBittorrent state: ${fmt.isolate(rec.state)}`;
    }
    this.num("dl", rec.dl_speed, fmt.speed);
    this.num("up", rec.up_speed, fmt.speed);
    this.set("eta", this.cells.eta, complete ? "–" : fmt.eta(rec.eta));
    this.set("size", this.cells.size, fmt.bytes(rec.size));
    this.set("ratio", this.cells.ratio, fmt.ratio(rec.ratio));
  }

  /** The check box, the pause/resume button, and the pending or failed mark. */
  renderActions(rec, ui) {
    const L = this.last;
    const selected = ui.selected(rec.key);
    if (L.selected !== selected) {
      L.selected = selected;
      this.check.checked = selected;
      this.el.classList.toggle("selected", selected);
    }
    const paused = fmt.phaseOf(rec) === "paused";
    if (L.paused !== paused) {
      L.paused = paused;
      const label = paused ? "Resume" : "Pause";
      this.toggle.setAttribute("aria-label", label);
      this.toggle.title = label;
      this.toggle.dataset.verb = paused ? "resume" : "pause";
      this.toggle.firstChild.firstChild.setAttribute("d", paused ? "M5 3.5v9l7-4.5z" : "M5 3.5v9M11 3.5v9");
    }
    const mark = ui.mark(rec.key);
    const text = mark ? mark.text : "";
    const state = mark ? (mark.failed ? "failed" : "pending") : "";
    if (L.markText !== text || L.markState !== state) {
      L.markText = text;
      L.markState = state;
      this.status.textContent = text;
      this.status.hidden = !text;
      this.status.dataset.state = state;
      this.status.title = mark && mark.failed ? `${mark.title}\nClick to dismiss.` : mark ? mark.title : "";
      if (state) this.el.dataset.action = state;
      else delete this.el.dataset.action;
      // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
      this.toggle.setAttribute("aria-disabled", String(state === "pending"));
    }
  }

  num(key, value, f) {
    const text = f(value);
    if (this.last[key] !== text) {
      this.last[key] = text;
      const node = this.cells[key];
      node.textContent = text;
      node.classList.toggle("zero", !value);
    }
  }
}

function readPrefs() {
  try {
    return JSON.parse(localStorage.getItem("quart-dl.prefs") || "{}") || {};
  } catch (_) {
    return {}; // storage blocked (third-party iframe) or corrupt: defaults
  }
}

function writePrefs(p) {
  try {
    localStorage.setItem("quart-dl.prefs", JSON.stringify(p));
  } catch (_) {
    /* storage blocked: the choice lasts for this page only */
  }
}

export class Dashboard {
  constructor(root) {
    this.root = root;
    this.records = new Map(); // key (instances.js keyOf) -> record
    this.rows = new Map(); // key -> Row
    this.visible = []; // Rows in the container, in order
    this.dirty = new Set(); // keys whose row needs a render
    this.orderDirty = true;
    this.countsDirty = true;
    this.raf = 0;
    this.loaded = false; // a snapshot arrived
    this.transfer = null; // the total over instances
    // id -> {id, name, status, transfer, index}, in configured order. A v1 snapshot (an
    // older server) is one instance with id null.
    this.instances = new Map();
    this.order = new Map(); // id -> index, for the instance column's sort
    this.multi = false; // more than one instance: the instance column, chips and banners show
    this.onInstances = null; // () => void: the instance list or a status changed (banners, add dialog)
    document.body.dataset.multi = "false";
    this.ui = null; // set by setupControls(): selection, action marks, commands
    this.onTransfer = null; // (transfer) => void: the alt-speed toggle follows it

    const prefs = readPrefs();
    this.sortKey = SORT_KEYS.has(prefs.sortKey) ? prefs.sortKey : "added_at";
    this.sortDir = prefs.sortDir === "asc" ? "asc" : "desc";
    this.phaseFilter = fmt.PHASES.includes(prefs.phase) ? prefs.phase : "all";
    // An instance id, kept while that instance exists (checked at every snapshot).
    this.instanceFilter = typeof prefs.instance === "string" ? prefs.instance : ALL;
    this.query = "";

    this.body = root.querySelector("#rows");
    this.head = root.querySelector("#thead-row");
    this.chips = root.querySelector("#filters");
    this.instChips = root.querySelector("#instance-filters");
    this.instTotals = root.querySelector("#instance-totals");
    this.search = root.querySelector("#search");
    this.sortSelect = root.querySelector("#sort-select");
    this.emptyEl = root.querySelector("#empty");
    this.tableEl = root.querySelector("#table");
    this.totalDl = root.querySelector("#total-dl");
    this.totalUp = root.querySelector("#total-up");
    this.totalCount = root.querySelector("#total-count");
    this.chipEls = {};
    this.instChipEls = new Map(); // instance id -> its chip (ALL too)
    this.instTotalEls = new Map(); // instance id -> its line in the summary
    this.buildHead();
    this.buildChips();
    this.bind();
  }

  buildHead() {
    for (const col of COLUMNS) {
      const h = document.createElement("div");
      h.setAttribute("role", "columnheader");
      h.className = col.cls;
      h.dataset.key = col.key;
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.testid = `sort-${col.key}`;
      b.innerHTML = `<span></span><svg class="arrow" viewBox="0 0 10 10" aria-hidden="true"><path d="M2 4l3 3 3-3"/></svg>`;
      b.firstChild.textContent = col.label;
      b.addEventListener("click", () => this.setSort(col.key));
      h.appendChild(b);
      this.head.appendChild(h);
    }
    this.sortSelect.innerHTML = "";
    const opts = [["added_at:desc", "Newest first"], ["added_at:asc", "Oldest first"],
      ["name:asc", "Name"], ["progress:desc", "Progress"], ["phase:asc", "State"],
      ["dl_speed:desc", "Download speed"], ["up_speed:desc", "Upload speed"],
      ["eta:asc", "ETA"], ["size:desc", "Size"], ["ratio:desc", "Ratio"]];
    for (const [v, label] of opts) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = label;
      this.sortSelect.appendChild(o);
    }
    this.sortSelect.addEventListener("change", () => {
      const [k, d] = this.sortSelect.value.split(":");
      this.sortKey = k;
      this.sortDir = d;
      this.sortChanged();
    });
    this.showSort();
  }

  buildChips() {
    const all = ["all", ...fmt.PHASES];
    for (const p of all) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chip";
      b.dataset.phase = p;
      b.dataset.testid = `filter-${p}`;
      b.innerHTML = '<span class="chip-dot" aria-hidden="true"></span><span class="chip-label"></span><span class="chip-count"></span>';
      b.children[1].textContent = p === "all" ? "All" : fmt.PHASE_LABEL[p];
      b.lastChild.dataset.testid = `count-${p}`;
      b.addEventListener("click", () => this.setFilter(p === this.phaseFilter && p !== "all" ? "all" : p));
      this.chips.appendChild(b);
      this.chipEls[p] = b;
    }
    this.showFilter();
  }

  bind() {
    let t = 0;
    this.search.addEventListener("input", () => {
      clearTimeout(t);
      t = setTimeout(() => {
        this.query = this.search.value.trim().toLocaleLowerCase();
        this.orderDirty = true;
        this.schedule();
      }, 80);
    });
    this.body.addEventListener("click", (ev) => {
      if (ev.target.closest("a, button, input, .c-sel, .c-act")) return;
      const row = ev.target.closest(".row");
      if (row && !window.getSelection().toString()) location.hash = row.querySelector("a.name").getAttribute("href");
    });
    this.root.querySelector("#clear-filters").addEventListener("click", () => {
      this.search.value = "";
      this.query = "";
      this.instanceFilter = ALL;
      this.showInstanceFilter();
      this.setFilter("all");
    });
  }

  savePrefs() {
    writePrefs({ sortKey: this.sortKey, sortDir: this.sortDir, phase: this.phaseFilter, instance: this.instanceFilter });
  }

  setSort(key) {
    if (this.sortKey === key) {
      this.sortDir = this.sortDir === "asc" ? "desc" : "asc";
    } else {
      this.sortKey = key;
      this.sortDir = COLUMNS.find((c) => c.key === key)?.desc ? "desc" : "asc";
    }
    this.sortChanged();
  }

  sortChanged() {
    this.showSort();
    this.savePrefs();
    this.orderDirty = true;
    this.schedule();
  }

  showSort() {
    for (const h of this.head.children) {
      const active = h.dataset.key === this.sortKey;
      h.setAttribute("aria-sort", active ? (this.sortDir === "asc" ? "ascending" : "descending") : "none");
      h.classList.toggle("sorted", active);
      h.classList.toggle("asc", active && this.sortDir === "asc");
    }
    const v = `${this.sortKey}:${this.sortDir}`;
    if (![...this.sortSelect.options].some((o) => o.value === v)) {
      const o = document.createElement("option");
      o.value = v;
      const col = COLUMNS.find((c) => c.key === this.sortKey);
      o.textContent = `${col ? col.label : this.sortKey} ${this.sortDir === "asc" ? "↑" : "↓"}`;
      this.sortSelect.appendChild(o);
    }
    this.sortSelect.value = v;
  }

  setFilter(p) {
    this.phaseFilter = p;
    this.showFilter();
    this.savePrefs();
    this.orderDirty = true;
    this.countsDirty = true;
    this.schedule();
  }

  showFilter() {
    for (const [p, b] of Object.entries(this.chipEls)) {
      b.setAttribute("aria-pressed", String(p === this.phaseFilter));
    }
  }

  // ---- instances ----

  /** Chips for the instances ("All" first), rebuilt when the instance list changes. */
  buildInstanceChips() {
    this.instChips.hidden = !this.multi;
    const ids = this.multi ? [ALL, ...this.instances.keys()] : [];
    const same = ids.length === this.instChipEls.size && ids.every((id) => this.instChipEls.has(id));
    if (!same) {
      this.instChips.replaceChildren();
      this.instChipEls.clear();
      for (const id of ids) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chip";
        b.dataset.instance = id;
        b.dataset.testid = id === ALL ? "instance-filter-all" : `instance-filter-${id}`;
        b.innerHTML = '<span class="chip-label"></span><span class="chip-count"></span>';
        b.addEventListener("click", () => this.setInstanceFilter(id === this.instanceFilter && id !== ALL ? ALL : id));
        this.instChips.appendChild(b);
        this.instChipEls.set(id, b);
      }
    }
    for (const [id, b] of this.instChipEls) {
      const label = id === ALL ? "All instances" : fmt.bidiSafe(this.instances.get(id).name);
      if (b.firstChild.textContent !== label) b.firstChild.textContent = label;
    }
    this.showInstanceFilter();
  }

  setInstanceFilter(id) {
    this.instanceFilter = id;
    this.showInstanceFilter();
    this.savePrefs();
    this.orderDirty = true;
    this.countsDirty = true;
    this.schedule();
  }

  showInstanceFilter() {
    for (const [id, b] of this.instChipEls) b.setAttribute("aria-pressed", String(id === this.instanceFilter));
  }

  /** What a row shows about its instance: {multi, name, down}. */
  where(instance) {
    const inst = this.instances.get(instance);
    return {
      multi: this.multi,
      name: inst ? inst.name : instance || "",
      down: inst ? health(inst.status) === "down" : false,
    };
  }

  /** The instance list for the banners and the add dialog: [{id, name, status}]. */
  instanceList() {
    return [...this.instances.values()].map(({ id, name, status }) => ({ id, name, status }));
  }

  /** The only instance's id when there is one (the detail view's instance from a plain address). */
  onlyInstance() {
    return this.instances.size === 1 ? [...this.instances.keys()][0] : null;
  }

  // ---- data in ----

  /** A `snapshot`: v2 (every instance) or v1 (an older server: one instance). Replaces all. */
  snapshot(data) {
    const instances = new Map();
    const next = new Map();
    if (data && data.v === 2) {
      let i = 0;
      for (const [id, inst] of Object.entries(data.instances || {})) {
        instances.set(id, { id, name: String(inst.name || id), status: inst.status || null, transfer: inst.transfer || null, index: i });
        i += 1;
      }
      for (const [id, torrents] of Object.entries(data.torrents || {})) {
        if (!instances.has(id)) instances.set(id, { id, name: id, status: null, transfer: null, index: instances.size });
        for (const [hash, rec] of Object.entries(torrents || {})) {
          const r = normalize(hash, rec, id);
          next.set(r.key, r);
        }
      }
    } else {
      instances.set(null, { id: null, name: "qBittorrent", status: data.status || null, transfer: data.transfer || null, index: 0 });
      for (const [hash, rec] of Object.entries(data.torrents || {})) {
        const r = normalize(hash, rec, null);
        next.set(r.key, r);
      }
    }
    this.v2 = !!(data && data.v === 2);
    this.instances = instances;
    this.order = new Map([...instances.values()].map((inst) => [inst.id, inst.index]));
    const multi = instances.size > 1;
    if (multi !== this.multi) {
      this.multi = multi;
      document.body.dataset.multi = String(multi);
    }
    if (this.instanceFilter !== ALL && !(multi && instances.has(this.instanceFilter))) this.instanceFilter = ALL;
    this.buildInstanceChips();
    this.buildInstanceTotals();

    const gone = [...this.records.keys()].filter((key) => !next.has(key));
    for (const key of gone) this.dropRow(key);
    this.records = next;
    if (this.ui) {
      for (const key of gone) this.ui.removed(key);
      for (const [key, rec] of next) this.ui.observe(key, rec);
    }
    for (const key of next.keys()) this.dirty.add(key);
    this.transfer = (this.v2 ? data.transfer : null) || sumTransfer([...instances.values()].map((i) => i.transfer));
    if (this.onTransfer) this.onTransfer(this.transfer);
    this.loaded = true;
    this.orderDirty = true;
    this.countsDirty = true;
    if (this.onInstances) this.onInstances();
    this.schedule();
  }

  /** The instance a v2 event names (null for v1), or undefined when it names none we know. */
  eventInstance(d) {
    const id = this.v2 ? d.instance : null;
    return this.instances.has(id) ? id : undefined;
  }

  diff(d) {
    const instance = this.eventInstance(d);
    if (instance === undefined) return; // an instance the snapshot did not have: the next snapshot will
    const changed = d.changed || {};
    const filterByPhase = this.phaseFilter !== "all";
    for (const hash of Object.keys(changed)) {
      const f = changed[hash];
      const key = keyOf(instance, hash);
      const rec = this.records.get(key);
      if (!rec) {
        this.records.set(key, normalize(hash, f, instance));
        this.orderDirty = true;
        this.countsDirty = true;
      } else {
        Object.assign(rec, f);
        if (
          this.sortKey in f ||
          (this.sortKey === "progress" && "complete" in f) ||
          (this.sortKey === "phase" && "state" in f) ||
          (this.sortKey !== "name" && "name" in f) || // tie-breaker
          (filterByPhase && ("phase" in f || "state" in f)) ||
          (this.query && "name" in f)
        ) {
          this.orderDirty = true;
        }
        if ("phase" in f || "state" in f) this.countsDirty = true;
      }
      this.dirty.add(key);
      if (this.ui) this.ui.observe(key, this.records.get(key));
    }
    for (const hash of d.removed || []) {
      const key = keyOf(instance, hash);
      if (this.records.delete(key)) {
        this.dropRow(key);
        if (this.ui) this.ui.removed(key);
        this.orderDirty = true;
        this.countsDirty = true;
      }
    }
    if (d.transfer) {
      // A diff carries its own instance's transfer; the total is their sum.
      const inst = this.instances.get(instance);
      inst.transfer = { ...(inst.transfer || {}), ...d.transfer };
      this.transfer = this.instances.size === 1
        ? { ...(this.transfer || {}), ...d.transfer }
        : sumTransfer([...this.instances.values()].map((i) => i.transfer));
      if (this.onTransfer) this.onTransfer(this.transfer);
    }
    this.schedule();
  }

  /** The keys a diff's `completed` names (its instance's torrents). */
  completedKeys(d) {
    const instance = this.eventInstance(d);
    if (instance === undefined) return [];
    return (d.completed || []).map((hash) => keyOf(instance, hash));
  }

  /** Rows whose selection or action mark changed: re-rendered at the next frame. */
  touch(keys) {
    for (const k of keys) if (this.records.has(k)) this.dirty.add(k);
    this.schedule();
  }

  /** The keys of the rows on screen, in order (for shift-click ranges and select-all). */
  visibleKeys() {
    if (this.orderDirty) this.flush();
    return this.visible.map((row) => row.el.dataset.key);
  }

  /** A `status` event (v2: it names its instance): that instance's rows and banner follow. */
  setStatus(status) {
    if (!status || typeof status !== "object") return;
    const instance = this.eventInstance(status);
    const inst = this.instances.get(instance);
    if (!inst) return;
    const { instance: _, ...record } = status;
    const wasDown = health(inst.status) === "down";
    inst.status = record;
    if (wasDown !== (health(record) === "down")) {
      for (const [key, rec] of this.records) if (rec.instance === instance) this.dirty.add(key);
    }
    if (this.onInstances) this.onInstances();
    this.schedule();
  }

  dropRow(key) {
    const row = this.rows.get(key);
    if (row) {
      row.el.remove();
      this.rows.delete(key);
    }
    this.dirty.delete(key);
  }

  /** A hidden page gets no animation frames; a timeout keeps the data current anyway. */
  schedule() {
    if (this.raf) return;
    if (document.hidden) {
      this.raf = setTimeout(() => this.flush(), 250);
    } else {
      this.raf = requestAnimationFrame(() => this.flush());
    }
  }

  // ---- DOM out ----

  matches(rec) {
    if (this.multi && this.instanceFilter !== ALL && rec.instance !== this.instanceFilter) return false;
    if (this.phaseFilter !== "all" && fmt.phaseOf(rec) !== this.phaseFilter) return false;
    if (this.query && !String(rec.name).toLocaleLowerCase().includes(this.query)) return false;
    return true;
  }

  getRow(rec) {
    let row = this.rows.get(rec.key);
    if (!row) {
      row = new Row(rec);
      this.rows.set(rec.key, row);
    }
    return row;
  }

  flush() {
    this.raf = 0;
    const t0 = performance.now();
    let rendered = 0;
    if (this.orderDirty) {
      this.orderDirty = false;
      const recs = [];
      for (const rec of this.records.values()) if (this.matches(rec)) recs.push(rec);
      recs.sort(comparator(this.sortKey, this.sortDir, this.order));
      const nextRows = recs.map((r) => this.getRow(r));
      // Bring rows that are about to be shown up to date while they are still detached.
      for (let i = 0; i < nextRows.length; i += 1) {
        const row = nextRows[i];
        if (!row.el.isConnected || this.dirty.has(recs[i].key)) {
          row.render(recs[i], this.ui, this.where(recs[i].instance));
          this.dirty.delete(recs[i].key);
          rendered += 1;
        }
      }
      this.reorder(nextRows);
    }
    for (const key of this.dirty) {
      const row = this.rows.get(key);
      if (row && row.el.isConnected) {
        const rec = this.records.get(key);
        row.render(rec, this.ui, this.where(rec.instance));
        rendered += 1;
      }
    }
    this.dirty.clear();
    if (this.countsDirty) {
      this.countsDirty = false;
      this.renderCounts();
    }
    this.renderTotals();
    this.renderEmpty();
    if (this.ui) this.ui.flushed();
    debugExtra.lastFlushMs = performance.now() - t0;
    debugExtra.lastFlushRows = rendered;
    debugExtra.flushes = (debugExtra.flushes || 0) + 1;
  }

  reorder(nextRows) {
    const nextSet = new Set(nextRows);
    for (const row of this.visible) if (!nextSet.has(row)) row.el.remove();
    const oldIndex = new Map();
    let i = 0;
    for (const row of this.visible) if (nextSet.has(row)) oldIndex.set(row, i++);
    const seq = nextRows.map((r) => (oldIndex.has(r) ? oldIndex.get(r) : -1));
    const keep = lisIndices(seq);
    let next = null;
    for (let j = nextRows.length - 1; j >= 0; j -= 1) {
      const el = nextRows[j].el;
      if (!keep.has(j)) this.body.insertBefore(el, next);
      next = el;
    }
    this.visible = nextRows;
  }

  renderCounts() {
    // The state chips count what the instance chip shows; the instance chips count all.
    const counts = Object.fromEntries(fmt.PHASES.map((p) => [p, 0]));
    const perInstance = new Map([[ALL, this.records.size], ...[...this.instances.keys()].map((id) => [id, 0])]);
    let all = 0;
    for (const rec of this.records.values()) {
      perInstance.set(rec.instance, (perInstance.get(rec.instance) || 0) + 1);
      if (this.multi && this.instanceFilter !== ALL && rec.instance !== this.instanceFilter) continue;
      counts[fmt.phaseOf(rec)] += 1;
      all += 1;
    }
    counts.all = all;
    for (const [id, b] of this.instChipEls) {
      const text = (perInstance.get(id) || 0).toLocaleString();
      if (b.lastChild.textContent !== text) b.lastChild.textContent = text;
    }
    for (const [p, b] of Object.entries(this.chipEls)) {
      const n = counts[p];
      const text = n.toLocaleString();
      if (b.lastChild.textContent !== text) b.lastChild.textContent = text;
      // Phases with nothing in them are hidden unless selected (or "unknown"/"error" never shown empty).
      const hide = p !== "all" && n === 0 && p !== this.phaseFilter;
      if (b.hidden !== hide) b.hidden = hide;
    }
  }

  renderTotals() {
    // Several instances: the speeds of the ones answering (a down instance's last speeds are
    // not flowing now). `this.transfer` keeps every instance for the alt-speed toggle.
    const t = this.multi ? this.liveTransfer() : this.transfer;
    const dl = t ? fmt.speed(t.dl_speed) : "–";
    const up = t ? fmt.speed(t.up_speed) : "–";
    if (this.totalDl.textContent !== dl) this.totalDl.textContent = dl;
    if (this.totalUp.textContent !== up) this.totalUp.textContent = up;
    const n = this.records.size;
    const c = this.loaded ? torrents(n) : "";
    if (this.totalCount.textContent !== c) this.totalCount.textContent = c;
    if (this.multi) this.renderInstanceTotals();
  }

  /** One line per instance in the summary (several instances only). */
  buildInstanceTotals() {
    this.instTotals.hidden = !this.multi;
    const ids = this.multi ? [...this.instances.keys()] : [];
    const same = ids.length === this.instTotalEls.size && ids.every((id) => this.instTotalEls.has(id));
    if (same) return;
    this.instTotalEls.clear();
    const items = ids.map((id) => {
      const li = document.createElement("li");
      li.dataset.testid = "instance-total";
      li.dataset.instance = id;
      li.innerHTML = '<bdi class="inst-name" data-testid="instance-total-name"></bdi>' +
        '<span class="inst-dl" data-testid="instance-total-dl"></span>' +
        '<span class="inst-up" data-testid="instance-total-up"></span>' +
        '<span class="inst-count" data-testid="instance-total-count"></span>';
      this.instTotalEls.set(id, li);
      return li;
    });
    this.instTotals.replaceChildren(...items);
  }

  liveTransfer() {
    const up = [...this.instances.values()].filter((i) => health(i.status) !== "down");
    return up.length ? sumTransfer(up.map((i) => i.transfer)) : null;
  }

  renderInstanceTotals() {
    const counts = new Map();
    for (const rec of this.records.values()) counts.set(rec.instance, (counts.get(rec.instance) || 0) + 1);
    for (const [id, li] of this.instTotalEls) {
      const inst = this.instances.get(id);
      const state = health(inst.status);
      const t = state === "down" ? null : inst.transfer;
      const [name, dl, up, count] = li.children;
      const texts = [fmt.bidiSafe(inst.name), `↓ ${t ? fmt.speed(t.dl_speed) : "–"}`,
        `↑ ${t ? fmt.speed(t.up_speed) : "–"}`, torrents(counts.get(id) || 0)];
      [name, dl, up, count].forEach((el, i) => {
        if (el.textContent !== texts[i]) el.textContent = texts[i];
      });
      if (li.dataset.health !== state) li.dataset.health = state;
    }
  }

  renderEmpty() {
    // Which message, if any, stands in for the table.
    let kind = "";
    // No torrents at all: first-run help when every instance is down, "connecting" while
    // one has not answered yet (with one instance: exactly what its status says).
    const states = [...this.instances.values()].map((i) => health(i.status));
    if (!this.loaded) kind = "loading";
    else if (this.records.size === 0 && states.length && states.every((h) => h === "down")) kind = "first-run";
    else if (this.records.size === 0 && states.includes("connecting")) kind = "connecting";
    else if (this.records.size === 0) kind = "empty";
    else if (this.visible.length === 0) kind = "no-match";
    if (this.emptyKind === kind) return;
    this.emptyKind = kind;
    this.root.dataset.empty = kind; // CSS hides the toolbar and totals when they say nothing
    this.tableEl.hidden = kind !== "" && kind !== "no-match";
    for (const el of this.emptyEl.children) el.hidden = el.dataset.kind !== kind;
    this.emptyEl.hidden = kind === "";
  }
}

function torrents(n) {
  return `${n.toLocaleString()} torrent${n === 1 ? "" : "s"}`;
}
