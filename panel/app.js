// Entry point: theme, routing (#/ and #/torrent/<hash>[?instance=<id>]), the one open
// stream, and the connection indicator that always tells the truth about that stream.
//
// The dashboard's stream is protocol v2 (every qBittorrent instance in one stream); the
// detail view's is the per-torrent v1 stream of the instance its address names. An older
// server answers the v2 request with v1, which the dashboard takes as one instance.

import * as fmt from "./format.js";
import { setAttr, setText } from "./dom.js";
import { Stream, auth, markSignedOut, withToken } from "./stream.js";
import { Dashboard } from "./dashboard.js";
import { Detail } from "./detail.js";
import { setupControls } from "./controls.js";
import { Banners } from "./banners.js";
import { getJSON } from "./api.js";
import { INSTANCE_RE, keyOf, withInstance } from "./instances.js";

const $ = (sel) => document.querySelector(sel);

// ---- theme: prefers-color-scheme, overridable with ?theme=light|dark ----
// The stylesheet holds the dark palette once, under [data-theme="dark"]: the choice is made
// here, from ?theme= or else the system setting (followed live when it changes).
const theme = new URLSearchParams(location.search).get("theme");
const darkQuery = matchMedia("(prefers-color-scheme: dark)");
function applyTheme() {
  const chosen = theme === "light" || theme === "dark" ? theme : darkQuery.matches ? "dark" : "light";
  document.documentElement.dataset.theme = chosen;
}
applyTheme();
darkQuery.addEventListener("change", applyTheme);

const dash = new Dashboard($("#dashboard"));
const detail = new Detail($("#detail"));
const controls = setupControls(dash, detail);

let stream = null; // the one open stream: global on the dashboard, per-torrent on the detail view
let view = null;
let dashScroll = 0;

// ---- connection indicator ----
const connEl = $("#conn");
const connLabel = $("#conn-label");
const updatedEl = $("#updated");
const retryBtn = $("#retry");
const announcer = $("#announcer");
let announced = "";

function connText(s, now) {
  if (s.state === "live") return "Live updates active";
  if (s.state === "offline") {
    const wait = s.retryAt ? Math.max(0, Math.ceil((s.retryAt - now) / 1000)) : 0;
    return wait > 0 ? `Offline · retrying in ${wait} s` : "Offline · retrying";
  }
  if (s.attempts === 0) return "Connecting…";
  return `Reconnecting (attempt ${s.attempts})`;
}

function renderConn(s, now = Date.now()) {
  if (auth.signedOut) {
    renderSignedOut();
    return;
  }
  if (s !== stream) return;
  if (s.stopped) {
    renderNoStream();
    return;
  }
  const stale = s.isStale(now);
  setAttr(connEl, "data-idle", "false");
  setAttr(connEl, "data-state", s.state);
  setAttr(connEl, "data-attempts", String(s.attempts));
  setAttr(connEl, "data-stale", String(stale));
  setText(connLabel, connText(s, now));
  retryBtn.hidden = s.state === "live" || !(s.state === "offline" || s.retryAt);

  const since = s.sinceUpdate(now);
  let updated = "";
  if (since !== null) {
    if (stale) updated = `No update for ${fmt.ago(since)}`;
    else if (s.state !== "live") updated = `Last update ${fmt.ago(since)} ago`;
    else updated = since < 2000 ? "Updated just now" : `Updated ${fmt.ago(since)} ago`;
  }
  setText(updatedEl, updated);
  setAttr(updatedEl, "data-stale", String(stale));
  updatedEl.previousElementSibling.hidden = !updated;

  // Data on screen is trustworthy only while live, fresh and not waiting for a snapshot.
  const fresh = s.state === "live" && !stale && !s.awaitingSnapshot;
  setAttr(document.body, "data-fresh", String(fresh));

  const say = s.state === "live" ? "Live updates active"
    : s.state === "offline" ? "Offline. Live updates stopped; retrying."
    : s.attempts ? "Connection lost. Reconnecting." : "";
  if (say && say !== announced) {
    announced = say;
    announcer.textContent = say;
  }
}

/** No stream is open (the torrent shown does not exist): nothing is live. */
function renderNoStream() {
  setAttr(connEl, "data-state", "offline");
  setAttr(connEl, "data-idle", "true");
  setAttr(connEl, "data-stale", "false");
  setText(connLabel, "No live updates for this page");
  setText(updatedEl, "");
  updatedEl.previousElementSibling.hidden = true;
  retryBtn.hidden = true;
  setAttr(document.body, "data-fresh", "true");
}

/** A 401: the token was changed or the cookie expired. Nothing reconnects any more. */
function renderSignedOut() {
  setAttr(connEl, "data-state", "signed_out");
  setAttr(connEl, "data-idle", "true");
  setAttr(connEl, "data-stale", "false");
  setText(connLabel, "Signed out");
  connLabel.title = "Reload the page to sign in again.";
  setText(updatedEl, "");
  updatedEl.previousElementSibling.hidden = true;
  retryBtn.hidden = true;
  setAttr(document.body, "data-fresh", "false");
  if (announced !== "Signed out") {
    announced = "Signed out";
    announcer.textContent = "Signed out. Reload the page to sign in again.";
  }
}
auth.onSignedOut = renderSignedOut;

retryBtn.addEventListener("click", () => stream && stream.retryNow());
window.addEventListener("online", () => stream && stream.retryNow());
window.addEventListener("offline", () => {
  if (stream && stream.state !== "live") stream.setState("offline");
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && stream && stream.state !== "live") stream.retryNow();
});

// ---- qBittorrent banners: the dashboard's instances, or the detail view's one ----
const banners = new Banners();
function showDashboardBanners() {
  if (view === "dashboard") banners.render(dash.instanceList(), dash.multi);
}
dash.onInstances = () => {
  showDashboardBanners();
  controls.instancesChanged(dash.instanceList());
};

// ---- completion notice: one toast; completions close together are counted in it ----
const toasts = $("#toasts");
let toast = null;
let toastNames = [];
let toastTimer = 0;
function completed(keys, nameOf) {
  if (!keys || !keys.length) return;
  if (!toast) {
    toast = document.createElement("div");
    toast.className = "toast";
    toast.dataset.testid = "toast";
    toasts.appendChild(toast);
    toastNames = [];
  }
  for (const k of keys) toastNames.push(nameOf(k) || k);
  if (toastNames.length === 1) {
    const name = document.createElement("bdi"); // the name's direction stays inside it
    name.textContent = fmt.bidiSafe(toastNames[0]);
    toast.replaceChildren("Finished: ", name);
  } else {
    setText(toast, `${toastNames.length} torrents finished`);
  }
  toast.title = toastNames.map(fmt.isolate).join("\n");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    if (toast) toast.remove();
    toast = null;
  }, 6000);
}

// ---- views ----
function startStream(url, handlers) {
  if (stream) stream.stop();
  if (auth.signedOut) {
    stream = null;
    renderSignedOut();
    return;
  }
  stream = new Stream(url, {
    ...handlers,
    onState: (s) => renderConn(s),
    onTick: (s, now) => {
      renderConn(s, now);
      if (handlers.onTick) handlers.onTick(now);
    },
  });
  stream.start();
  renderConn(stream);
}

function showDashboard() {
  detail.hide();
  $("#detail").hidden = true;
  $("#dashboard").hidden = false;
  document.body.dataset.view = "dashboard";
  document.title = "quart-dl";
  if (view !== "dashboard") {
    view = "dashboard";
    startStream("api/events?v=2", {
      onSnapshot: (d) => dash.snapshot(d),
      onDiff: (d) => {
        dash.diff(d);
        completed(dash.completedKeys(d), (k) => dash.records.get(k)?.name);
      },
      onStatus: (s) => dash.setStatus(s),
      // v1 (an older server): every action is the primary's, whatever instance it names.
      onAction: (ev) => controls.event(dash.v2 ? ev : { ...ev, instance: null }),
    });
    showDashboardBanners();
    requestAnimationFrame(() => window.scrollTo(0, dashScroll));
  }
}

const HASH_RE = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

/**
 * The detail view of one torrent of one instance. `instance` is the address's (null: a plain
 * `#/torrent/<hash>`, the primary instance, which the page knows by id when it has only one).
 */
function showDetail(hash, instance, route) {
  if (view === "dashboard") dashScroll = window.scrollY;
  $("#dashboard").hidden = true;
  $("#detail").hidden = false;
  document.body.dataset.view = "detail";
  window.scrollTo(0, 0);
  view = route;
  const named = instance || dash.onlyInstance();
  const known = dash.instances.get(named);
  detail.show(hash, named, { multi: !!instance, name: known ? known.name : named || "" });
  let status = known ? known.status : null;
  const showBanner = () => banners.render([{ id: named, name: detail.instanceName, status }], !!instance);
  showBanner();
  if (instance && !known && INSTANCE_RE.test(instance)) {
    // Opened from an address, before any dashboard: the instance's display name from the API.
    getJSON(`api/instances/${instance}`).then((body) => {
      if (view !== route || !body || typeof body.name !== "string") return;
      detail.setInstanceName(body.name);
      showBanner();
    });
  }
  if (!HASH_RE.test(hash) || (instance !== null && !INSTANCE_RE.test(instance))) {
    if (stream) stream.stop();
    stream = null;
    detail.notFound();
    renderNoStream();
    return;
  }
  let chartTick = 0;
  // The address's instance, or none: the server's primary (and the only one, with one).
  const own = (path) => withInstance(path, instance);
  const setStatus = (s) => {
    if (!s || typeof s !== "object") return;
    const { instance: _, ...record } = s;
    status = record;
    showBanner();
  };
  startStream(own(`api/torrents/${hash}/events`), {
    onSnapshot: (d) => {
      detail.snapshot(d);
      setStatus(d.status);
    },
    onDiff: (d) => {
      detail.diff(d);
      completed(d.completed, () => detail.rec?.name);
    },
    onStatus: setStatus,
    // This stream carries one instance's events: its actions are that instance's.
    onAction: (ev) => controls.event({ ...ev, instance: named }),
    onTick: () => {
      chartTick += 1;
      if (chartTick % 3 === 0) detail.drawChart();
    },
    // A closed stream may mean the torrent is gone (404): then stop instead of retrying.
    gone: async () => {
      const res = await fetch(withToken(own(`api/torrents/${hash}`)), { cache: "no-store" });
      if (res.status === 401) markSignedOut();
      if (res.status === 404 || res.status === 400) {
        detail.notFound();
        return true;
      }
      return false;
    },
  });
}

function route() {
  const m = /^#\/torrent\/([^/?]+)\/?(?:\?(.*))?$/.exec(location.hash);
  if (m) {
    const hash = decodeURIComponent(m[1]).toLowerCase();
    const instance = new URLSearchParams(m[2] || "").get("instance");
    const key = `detail:${keyOf(instance, hash)}`;
    if (view !== key) showDetail(hash, instance, key);
  } else {
    showDashboard();
  }
}

window.addEventListener("hashchange", route);
route();
