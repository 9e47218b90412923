// The qBittorrent banners: what a qBittorrent that is down, refusing the password or not
// answering yet means for the data on screen.
//
// One instance: the one banner under the header, word for word as before several instances
// existed. Several: one banner per instance that is not connected, each naming its instance
// (the others' data is current, and saying "qBittorrent is unreachable" alone would not tell
// which one). A banner per instance, never one for all: one instance down is that instance's
// news only.

import * as fmt from "./format.js";
import { setAttr, setText } from "./dom.js";

const $ = (sel) => document.querySelector(sel);

/** Title and text for a status, or null when there is nothing to say (connected). */
function words(status, name) {
  const q = status && status.qbittorrent;
  const who = name ? `qBittorrent “${fmt.bidiSafe(name)}”` : "qBittorrent";
  let text = (status && status.message) || "";
  if (q === "unreachable") {
    if (!text) text = "Check that it is running and that quart-dl points to its Web UI.";
    return { title: `${who} is unreachable.`, text, level: "error" };
  }
  if (q === "auth_failed") {
    if (!text) text = "Check the username and password quart-dl uses for the Web UI.";
    return { title: `${who} rejected the credentials.`, text, level: "error" };
  }
  if (q === "connecting") return { title: `Connecting to ${who}…`, text, level: "info" };
  return null;
}

/** Fill one banner element (the static one or a per-instance copy) for `status`. */
function fill(el, status, name) {
  const q = status ? status.qbittorrent : "";
  const w = words(status, name);
  setAttr(el, "data-status", q || "");
  el.hidden = !w;
  if (!w) return;
  el.dataset.level = w.level;
  el.setAttribute("role", w.level === "info" ? "status" : "alert");
  setText(el.querySelector("[data-part=title]"), w.title);
  setText(el.querySelector("[data-part=text]"), fmt.bidiSafe(w.text));
  el.title = status.since ? `Since ${new Date(status.since * 1000).toLocaleString()}` : "";
}

export class Banners {
  constructor() {
    this.single = $("#banner");
    this.box = $("#banners");
    this.els = new Map(); // instance id -> its banner
  }

  /**
   * Show the banners for `list` ([{id, name, status}], configured order). `multi`: name each
   * instance (several instances configured); otherwise the one banner speaks for the only one.
   */
  render(list, multi) {
    if (!multi) {
      this.clearMulti();
      const only = list[0];
      fill(this.single, only ? only.status : null, "");
      const q = only && only.status ? only.status.qbittorrent : "";
      setText($("#first-run-title"), q === "auth_failed"
        ? "qBittorrent rejected quart-dl's login"
        : "quart-dl can't reach qBittorrent yet");
      return;
    }
    fill(this.single, null, "");
    const ids = new Set(list.map((i) => i.id));
    for (const [id, el] of this.els) {
      if (!ids.has(id)) {
        el.remove();
        this.els.delete(id);
      }
    }
    let prev = null;
    for (const inst of list) {
      let el = this.els.get(inst.id);
      if (!el) {
        el = this.make(inst.id);
        this.els.set(inst.id, el);
      }
      // Configured order, whatever order they appeared in.
      if (prev ? prev.nextSibling !== el : this.box.firstChild !== el) this.box.insertBefore(el, prev ? prev.nextSibling : this.box.firstChild);
      prev = el;
      fill(el, inst.status, inst.name || inst.id);
    }
    this.box.hidden = false;
    const down = list.find((i) => i.status && i.status.qbittorrent === "auth_failed");
    setText($("#first-run-title"), down
      ? "A qBittorrent rejected quart-dl's login"
      : "quart-dl can't reach qBittorrent yet");
  }

  clearMulti() {
    for (const el of this.els.values()) el.remove();
    this.els.clear();
    this.box.hidden = true;
  }

  make(id) {
    const el = this.single.cloneNode(true);
    el.removeAttribute("id");
    el.dataset.testid = "instance-banner";
    el.dataset.instance = id;
    el.querySelector("[data-part=title]").removeAttribute("id");
    el.querySelector("[data-part=text]").removeAttribute("id");
    el.querySelector("[data-part=title]").dataset.testid = "instance-banner-title";
    el.querySelector("[data-part=text]").dataset.testid = "instance-banner-text";
    return el;
  }
}
