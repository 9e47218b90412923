// Wiring the action controls into the views: the row buttons and check boxes (one delegated
// listener for all rows), the selection bar, the detail view's buttons, the add dialog, the
// alt-speed toggle in the header, toasts for actions, and `window.quartDlActions` (what the
// benchmark and the end-to-end tests read). Every control is marked `.act-only`: the
// stylesheet hides them all until GET api/access says this page may act.

import * as fmt from "./format.js";
import { ActionCenter } from "./actions.js";
import { AddDialog } from "./add.js";
import { clientId, loadAccess, postJSON } from "./api.js";
import { Commands } from "./commands.js";
import { splitKey } from "./instances.js";
import { openMenu } from "./menu.js";
import { BulkBar, Selection } from "./select.js";

const $ = (sel) => document.querySelector(sel);

/** A short notice at the bottom right; torrent names in `name` are shown isolated. */
export function notify(text, opts = {}) {
  const box = $("#toasts");
  const t = document.createElement("div");
  t.className = opts.failed ? "toast failed" : "toast";
  t.dataset.testid = "action-toast";
  t.setAttribute("role", opts.failed ? "alert" : "status");
  if (opts.name) {
    const b = document.createElement("bdi");
    b.textContent = fmt.bidiSafe(opts.name);
    t.append(`${text}: `, b);
    t.title = `${text}: ${fmt.isolate(opts.name)}`;
  } else {
    t.textContent = text;
  }
  box.appendChild(t);
  setTimeout(() => t.remove(), opts.failed ? 10000 : 5000);
}

export function setupControls(dash, detail) {
  // Torrents are known by key (instance and hash, instances.js) everywhere here.
  const lookup = (key) => (detail.key === key && detail.rec ? detail.rec : dash.records.get(key));
  const nameOf = (key) => lookup(key)?.name || splitKey(key).hash;

  let selection = null;
  let bulk = null;
  const center = new ActionCenter({
    lookup,
    nameOf,
    notify,
    changed: (keys) => {
      dash.touch(keys);
      if (detail.key && keys.includes(detail.key)) renderDetail();
    },
  });
  const commands = new Commands(center, nameOf, lookup);
  selection = new Selection(() => dash.visibleKeys(), (keys) => dash.touch(keys));
  bulk = new BulkBar($("#bulk"), selection, commands, openMenu);
  const selectAll = $("#select-all");

  dash.ui = {
    selected: (h) => selection.has(h),
    mark: (h) => center.describe(h),
    observe: (h, rec) => center.observe(h, rec),
    removed: (h) => {
      center.removed(h);
      selection.drop(h);
    },
    flushed: () => {
      bulk.render();
      const state = selection.visibleState();
      selectAll.checked = state === "all";
      selectAll.indeterminate = state === "some";
    },
  };

  // ---- rows: one listener for every row's controls ----
  const rows = $("#rows");
  rows.addEventListener("click", (ev) => {
    const row = ev.target.closest(".row");
    if (!row) return;
    const hash = row.dataset.key;
    const check = ev.target.closest("[data-testid=torrent-select]");
    if (check) {
      selection.click(hash, check.checked, ev.shiftKey);
      return;
    }
    if (ev.target.closest(".c-sel")) {
      // A click beside the box (its cell is the bigger target on a phone) toggles it too.
      selection.click(hash, !selection.has(hash), ev.shiftKey);
      return;
    }
    const button = ev.target.closest("button");
    if (!button) return;
    const id = button.dataset.testid;
    if (id === "torrent-toggle") {
      if (button.getAttribute("aria-disabled") !== "true") center.run(button.dataset.verb || "pause", [hash]);
    }
    else if (id === "torrent-menu") openMenu(button, commands.items([hash]));
    else if (id === "torrent-action") center.dismiss(hash);
  });
  // Space on a focused box is a click already; shift+Space extends the range like shift-click.
  selectAll.addEventListener("change", () => selection.toggleAll());
  window.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && selection.size && !document.querySelector("dialog[open], .menu")) selection.clear();
  });

  // ---- the detail view ----
  const dToggle = $("#d-toggle");
  const dStatus = $("#d-action");
  dToggle.addEventListener("click", () => {
    if (detail.key && dToggle.getAttribute("aria-disabled") !== "true") center.run(dToggle.dataset.verb || "pause", [detail.key]);
  });
  $("#d-force").addEventListener("click", () => detail.key && center.run("force_start", [detail.key], { value: true }));
  $("#d-recheck").addEventListener("click", () => detail.key && center.run("recheck", [detail.key]));
  const dMore = $("#d-more");
  dMore.addEventListener("click", () => {
    if (!detail.key) return;
    const skip = new Set(["menu-pause", "menu-resume", "menu-force_start", "menu-recheck", "menu-delete"]);
    const items = commands.items([detail.key]).filter((i) => i === "-" || !skip.has(i.testid));
    while (items.length && items[items.length - 1] === "-") items.pop();
    openMenu(dMore, items);
  });
  $("#d-delete").addEventListener("click", async () => {
    const key = detail.key;
    if (key && (await commands.delete([key]))) location.hash = "#/";
  });
  dStatus.addEventListener("click", () => detail.key && center.dismiss(detail.key));

  function renderDetail() {
    const rec = detail.rec;
    if (!rec || !detail.key) return;
    const paused = fmt.phaseOf(rec) === "paused";
    dToggle.dataset.verb = paused ? "resume" : "pause";
    dToggle.lastChild.textContent = paused ? "Resume" : "Pause";
    dToggle.firstChild.firstChild.setAttribute("d", paused ? "M5 3.5v9l7-4.5z" : "M5 3.5v9M11 3.5v9");
    const mark = center.describe(detail.key);
    dStatus.hidden = !mark;
    dStatus.textContent = mark ? mark.text : "";
    dStatus.dataset.state = mark ? (mark.failed ? "failed" : "pending") : "";
    dStatus.title = mark ? mark.title : "";
    dToggle.setAttribute("aria-disabled", String(!!mark && !mark.failed));
  }
  detail.afterRender = (rec) => {
    center.observe(detail.key, rec);
    renderDetail();
  };
  detail.onRemoved = (key) => center.removed(key);

  // ---- add ----
  const add = new AddDialog($("#add-dialog"), notify);
  $("#add-open").addEventListener("click", () => add.open());

  // ---- alt speed ----
  const alt = $("#alt-speed");
  let altPending = null;
  const showAlt = (transfer) => {
    const known = transfer && typeof transfer.alt_speed === "boolean";
    alt.hidden = !known;
    if (!known) return;
    if (altPending !== null && transfer.alt_speed === altPending) altPending = null;
    const on = altPending !== null ? altPending : transfer.alt_speed;
    alt.setAttribute("aria-pressed", String(on));
    alt.dataset.pending = String(altPending !== null);
    alt.title = altPending !== null
      ? (altPending ? "Turning alternative speed limits on…" : "Turning alternative speed limits off…")
      : on ? "Alternative speed limits are on" : "Alternative speed limits are off";
  };
  alt.addEventListener("click", async () => {
    const want = alt.getAttribute("aria-pressed") !== "true";
    altPending = want;
    showAlt(dash.transfer);
    // The toggle shows the total (on if any instance has it on): it turns every instance.
    const ids = dash.v2 && dash.multi ? [...dash.instances.keys()] : [null];
    let res = null;
    for (const id of ids) {
      const answer = await postJSON("api/transfer", { alt_speed: want, ...(id ? { instance: id } : {}) });
      if (!res || !answer.ok) res = answer;
    }
    if (!res.ok) {
      altPending = null;
      showAlt(dash.transfer);
      notify(`Alternative speed: ${res.message}`, { failed: true });
    } else if (typeof res.body.alt_speed === "boolean") {
      // The answer holds what qBittorrent reads back after the change: as good as the stream's
      // transfer, and the only word about it on the detail view (its stream carries none).
      dash.transfer = { ...(dash.transfer || {}), alt_speed: res.body.alt_speed };
      showAlt(dash.transfer);
    }
  });
  dash.onTransfer = showAlt;

  // ---- access: every control stays hidden until the server says this page may act ----
  const access = loadAccess();

  Object.defineProperty(window, "quartDlActions", {
    value: Object.freeze({
      clientId,
      get clicks() { return center.debug.clicks.slice(); },
      get confirmed() { return center.debug.confirmed.slice(); },
      get selected() { return selection.list(); },
      marks() { return Object.fromEntries([...center.marks].map(([h, m]) => [h, m.state])); },
    }),
  });

  return {
    center,
    selection,
    access,
    event: (ev) => center.event(ev),
    /** The dashboard's instance list changed: the add dialog offers them. */
    instancesChanged: (list) => add.setInstances(list),
  };
}
