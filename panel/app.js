// Entry point: theme, routing (#/ and #/torrent/<hash>), the one open stream, and the
// connection indicator that always tells the truth about that stream.

import * as fmt from "./format.js";
import { setAttr, setText } from "./dom.js";
import { Stream, auth, markSignedOut, withToken } from "./stream.js";
import { Dashboard } from "./dashboard.js";
import { Detail } from "./detail.js";
import { setupControls } from "./controls.js";

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

// ---- qBittorrent banner ----
const banner = $("#banner");
function setStatus(status) {
  if (!status || typeof status !== "object") return;
  dash.setStatus(status);
  const q = status.qbittorrent;
  setAttr(banner, "data-status", q || "");
  let title = "";
  let text = status.message || "";
  if (q === "unreachable") {
    title = "qBittorrent is unreachable.";
    if (!text) text = "Check that it is running and that quart-dl points to its Web UI.";
  } else if (q === "auth_failed") {
    title = "qBittorrent rejected the credentials.";
    if (!text) text = "Check the username and password quart-dl uses for the Web UI.";
  } else if (q === "connecting") {
    title = "Connecting to qBittorrent…";
  }
  banner.hidden = !title;
  setText($("#first-run-title"), q === "auth_failed"
    ? "qBittorrent rejected quart-dl's login"
    : "quart-dl can't reach qBittorrent yet");
  banner.dataset.level = q === "connecting" ? "info" : "error";
  banner.setAttribute("role", q === "connecting" ? "status" : "alert");
  setText($("#banner-title"), title);
  setText($("#banner-text"), title ? fmt.bidiSafe(text) : "");
  if (title && status.since) banner.title = `Since ${new Date(status.since * 1000).toLocaleString()}`;
}

// ---- completion notice: one toast; completions close together are counted in it ----
const toasts = $("#toasts");
let toast = null;
let toastNames = [];
let toastTimer = 0;
function completed(hashes, nameOf) {
  if (!hashes || !hashes.length) return;
  if (!toast) {
    toast = document.createElement("div");
    toast.className = "toast";
    toast.dataset.testid = "toast";
    toasts.appendChild(toast);
    toastNames = [];
  }
  for (const h of hashes) toastNames.push(nameOf(h) || h);
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
    startStream("api/events", {
      onSnapshot: (d) => {
        dash.snapshot(d.torrents, d.transfer);
        setStatus(d.status);
      },
      onDiff: (d) => {
        dash.diff(d);
        completed(d.completed, (h) => dash.records.get(h)?.name);
      },
      onStatus: setStatus,
      onAction: controls.event,
    });
    requestAnimationFrame(() => window.scrollTo(0, dashScroll));
  }
}

const HASH_RE = /^[0-9a-f]{40}$|^[0-9a-f]{64}$/;

function showDetail(hash) {
  if (view === "dashboard") dashScroll = window.scrollY;
  $("#dashboard").hidden = true;
  $("#detail").hidden = false;
  document.body.dataset.view = "detail";
  window.scrollTo(0, 0);
  view = `detail:${hash}`;
  detail.show(hash);
  if (!HASH_RE.test(hash)) {
    if (stream) stream.stop();
    stream = null;
    detail.notFound();
    renderNoStream();
    return;
  }
  let chartTick = 0;
  startStream(`api/torrents/${hash}/events`, {
    onSnapshot: (d) => {
      detail.snapshot(d);
      setStatus(d.status);
    },
    onDiff: (d) => {
      detail.diff(d);
      completed(d.completed, () => detail.rec?.name);
    },
    onStatus: setStatus,
    onAction: controls.event,
    onTick: () => {
      chartTick += 1;
      if (chartTick % 3 === 0) detail.drawChart();
    },
    // A closed stream may mean the torrent is gone (404): then stop instead of retrying.
    gone: async () => {
      const res = await fetch(withToken(`api/torrents/${hash}`), { cache: "no-store" });
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
  const m = /^#\/torrent\/([^/?]+)\/?$/.exec(location.hash);
  if (m) {
    const hash = decodeURIComponent(m[1]).toLowerCase();
    if (view !== `detail:${hash}`) showDetail(hash);
  } else {
    showDashboard();
  }
}

window.addEventListener("hashchange", route);
route();
