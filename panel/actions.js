// Actions on torrents and what each row shows about them: pending from the click until the
// record confirms, failed (with qBittorrent's or quart-dl's reason) when the answer or the
// `action` event says so.
//
// Why "until the record confirms" and not "until the answer": qBittorrent answers at once
// but shows the change only at its next refresh. The answer says it was asked, the record's
// phase says it happened; the row keeps "Pausing…" between the two, so nothing on screen
// claims a state qBittorrent does not report yet.
//
// Marks are keyed by torrent key (instance and hash, instances.js): a selection across
// instances goes as one request per instance, each naming its `instance`.

import { clientId, postJSON } from "./api.js";
import * as fmt from "./format.js";
import { byInstance, keyOf } from "./instances.js";

/** Verb -> words, and how a record shows the action took effect (null: the answer is enough). */
export const VERBS = {
  pause: { label: "Pause", pending: "Pausing…", done: (r) => fmt.phaseOf(r) === "paused" },
  resume: { label: "Resume", pending: "Resuming…", done: (r) => fmt.phaseOf(r) !== "paused" },
  force_start: {
    label: "Force start",
    pending: "Force starting…",
    done: (r, p) => (p.value === false) !== String(r.state).startsWith("forced"),
  },
  recheck: { label: "Recheck", pending: "Rechecking…", done: null },
  reannounce: { label: "Reannounce", pending: "Reannouncing…", done: null },
  delete: { label: "Delete", pending: "Deleting…", done: null, gone: true },
  set_category: { label: "Category", pending: "Setting category…", done: (r, p) => (r.category || "") === p.category },
  add_tags: { label: "Add tags", pending: "Adding tags…", done: (r, p) => p.tags.every((t) => (r.tags || []).includes(t)) },
  remove_tags: { label: "Remove tags", pending: "Removing tags…", done: (r, p) => !p.tags.some((t) => (r.tags || []).includes(t)) },
  set_limits: { label: "Limits", pending: "Setting limits…", done: null },
  move: { label: "Move", pending: "Moving…", done: (r, p) => samePath(r.save_path, p.save_path) },
  rename: { label: "Rename", pending: "Renaming…", done: (r, p) => r.name === p.name },
  queue_top: { label: "Queue top", pending: "Queueing…", done: null },
  queue_bottom: { label: "Queue bottom", pending: "Queueing…", done: null },
};

function samePath(a, b) {
  const norm = (s) => String(s || "").replace(/\/+$/, "");
  return norm(a) === norm(b);
}

/** Another viewer's actions that mark rows (their effect shows without their parameters). */
const OTHERS_MARKED = new Set(["pause", "resume", "delete"]);

/** The most hashes one POST api/torrents/actions takes (the server's limit). */
const MAX_HASHES = 20000;

/** Pending longer than this after an accepted answer: the row says it was not confirmed. */
const CONFIRM_TIMEOUT_MS = 30000;

export class ActionCenter {
  /**
   * @param {object} hooks lookup(key) -> the record shown now (or undefined),
   *   changed(keys) after marks change, notify(text, {title}) for a toast.
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.marks = new Map(); // key -> {verb, params, token, state: "pending"|"accepted"|"failed", message, at}
    this.seq = 0;
    this.timer = setInterval(() => this.expire(), 2000);
    this.debug = { clicks: [], confirmed: [] }; // read by the benchmark and e2e tests
  }

  mark(hash) {
    return this.marks.get(hash);
  }

  /** What the row says about an action: "" (nothing), or {text, failed, title}. */
  describe(hash) {
    const m = this.marks.get(hash);
    if (!m) return null;
    const verb = VERBS[m.verb] || { label: m.verb, pending: `${m.verb}…` };
    if (m.state === "failed") {
      return { text: `${verb.label} failed`, failed: true, title: m.message || "" };
    }
    return { text: verb.pending, failed: false, title: m.other ? "Asked by another viewer" : "" };
  }

  set(hashes, m) {
    for (const h of hashes) this.marks.set(h, { ...m });
    this.hooks.changed(hashes);
  }

  clear(hashes) {
    const gone = hashes.filter((h) => this.marks.delete(h));
    if (gone.length) this.hooks.changed(gone);
  }

  /** Dismiss a failed mark (clicking it). */
  dismiss(hash) {
    const m = this.marks.get(hash);
    if (m && m.state === "failed") this.clear([hash]);
  }

  /**
   * Ask for `verb` on `keys` (torrent keys): mark them pending now, POST (one request per
   * instance), and turn the marks into failed ones when the answer says no. `params` is an
   * object, or a function of the instance id giving one (a category new to one instance
   * only). Resolves to the answer (the first refusal, if any).
   */
  async run(verb, keys, params = {}) {
    if (!keys.length) return { ok: false, message: "nothing selected" };
    const token = ++this.seq;
    const at = performance.now();
    const paramsOf = typeof params === "function" ? params : () => params;
    this.debug.clicks.push({ verb, hashes: [...keys], at });
    for (const [instance, hashes] of byInstance(keys)) {
      this.set(hashes.map((h) => keyOf(instance, h)), { verb, params: paramsOf(instance), token, state: "pending", message: "", at, other: false });
    }
    let res = null;
    for (const [instance, hashes] of byInstance(keys)) {
      const p = paramsOf(instance);
      const where = instance ? { instance } : {}; // none: the primary instance
      // The server takes at most MAX_HASHES a request: a bigger selection goes in parts.
      for (let i = 0; i < hashes.length; i += MAX_HASHES) {
        const part = hashes.slice(i, i + MAX_HASHES);
        const answer = await postJSON("api/torrents/actions", { action: verb, hashes: part, ...p, ...where });
        this.answered(verb, part.map((h) => keyOf(instance, h)), p, token, answer);
        if (!res || !answer.ok) res = answer;
      }
    }
    return res;
  }

  /** The answer to one request: failed marks with the reason, or accepted ones. */
  answered(verb, hashes, params, token, res) {
    const mine = hashes.filter((h) => this.marks.get(h)?.token === token);
    if (!res.ok) {
      let message = res.message;
      if (res.body && res.body.error === "unknown_torrents") message = "Not in qBittorrent any more";
      for (const h of mine) this.marks.set(h, { ...this.marks.get(h), state: "failed", message });
      if (mine.length) this.hooks.changed(mine);
      this.hooks.notify(`${(VERBS[verb] || { label: verb }).label} failed: ${message}`, { failed: true });
      return;
    }
    for (const h of mine) this.marks.get(h).state = "accepted";
    // Already in the asked-for state (pausing a paused torrent): no diff will come to say so.
    const done = VERBS[verb] ? VERBS[verb].done : null;
    if (!done && !(VERBS[verb] && VERBS[verb].gone)) {
      this.confirm(mine);
    } else if (done) {
      this.confirm(mine.filter((h) => {
        const r = this.hooks.lookup(h);
        return r && done(r, params);
      }));
    }
  }

  confirm(hashes) {
    if (!hashes.length) return;
    const now = performance.now();
    for (const h of hashes) {
      const m = this.marks.get(h);
      if (m) this.debug.confirmed.push({ hash: h, verb: m.verb, ms: now - m.at });
    }
    this.clear(hashes);
  }

  /** A record changed (or is current): clear the marks it confirms. */
  observe(hash, rec) {
    const m = this.marks.get(hash);
    if (!m || m.state === "failed" || !rec) return;
    const verb = VERBS[m.verb];
    if (verb && verb.done && verb.done(rec, m.params)) this.confirm([hash]);
  }

  /** A torrent left qBittorrent: a delete is confirmed, any other mark has nothing to show on. */
  removed(hash) {
    if (this.marks.has(hash)) this.confirm([hash]);
  }

  /**
   * The `action` event. Ours (same client id): a refusal the answer may not have reached us
   * with (it did, usually; this keeps the two in step). Another viewer's: a toast, and the
   * rows marked pending until their records confirm.
   */
  event(raw) {
    if (!raw || typeof raw !== "object" || !Array.isArray(raw.hashes)) return;
    // The event names its instance's hashes; marks know torrents by key.
    const instance = typeof raw.instance === "string" ? raw.instance : null;
    const ev = { ...raw, hashes: raw.hashes.map((h) => keyOf(instance, String(h))) };
    const verb = VERBS[ev.action] ? ev.action : ev.action === "stop" ? "pause" : ev.action === "start" ? "resume" : ev.action;
    const refused = ev.result && ev.result !== "accepted";
    if (ev.client === clientId) {
      if (!refused) return;
      const hit = ev.hashes.filter((h) => this.marks.has(h) && this.marks.get(h).verb === verb);
      for (const h of hit) this.marks.set(h, { ...this.marks.get(h), state: "failed", message: ev.message || ev.result });
      if (hit.length) this.hooks.changed(hit);
      return;
    }
    const n = ev.hashes.length;
    if (ev.action === "add" || ev.action === "transfer" || n === 0) {
      // No rows to mark: adds show up as new rows, speed limits on the alt-speed toggle.
      const what = ev.action === "add" ? "added torrents" : ev.action === "transfer" ? "changed the speed limits" : String(ev.action);
      this.hooks.notify(refused ? `Another viewer's request failed (${what})` : `Another viewer ${what}`, { failed: false });
      return;
    }
    const label = (VERBS[verb] || { label: String(ev.action) }).label;
    const what = n === 1 ? this.hooks.nameOf(ev.hashes[0]) : `${n} torrents`;
    this.hooks.notify(refused ? `Another viewer's ${label.toLowerCase()} failed` : `Another viewer: ${label}`, { name: what });
    if (refused || !VERBS[verb]) return;
    const def = VERBS[verb];
    const at = performance.now();
    const hashes = ev.hashes.filter((h) => this.hooks.lookup(h) && !this.marks.has(h));
    // The event carries no parameters: only verbs whose effect needs none are marked.
    if (!OTHERS_MARKED.has(verb)) return;
    const pending = hashes.filter((h) => !(def.done && def.done(this.hooks.lookup(h), ev)));
    this.set(pending, { verb, params: ev, token: 0, state: "accepted", message: "", at, other: true });
  }

  expire() {
    const now = performance.now();
    const late = [];
    for (const [h, m] of this.marks) {
      if (m.state === "accepted" && now - m.at > CONFIRM_TIMEOUT_MS) late.push(h);
    }
    for (const h of late) {
      const m = this.marks.get(h);
      this.marks.set(h, { ...m, state: "failed", message: "qBittorrent accepted it but does not show it yet" });
    }
    if (late.length) this.hooks.changed(late);
  }
}
