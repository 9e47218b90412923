// Talking to the REST API for actions: JSON and multipart POSTs, what this page may do
// (GET api/access), and the per-tab client id every action carries.
//
// Why a client id: the `action` event reaches every viewer, this tab included. With an id of
// our own in `client`, the panel tells its own actions (already marked pending at the click)
// from other viewers' (shown as a toast and a pending mark). sessionStorage is per tab, so
// two tabs are two clients, and a reload keeps its id.

import { markSignedOut, withToken } from "./stream.js";

function newClientId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return "panel-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function tabClientId() {
  try {
    let id = sessionStorage.getItem("quart-dl.client");
    if (!id || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
      id = newClientId();
      sessionStorage.setItem("quart-dl.client", id);
    }
    return id;
  } catch (_) {
    return newClientId(); // storage blocked (third-party frame): one id for this page's life
  }
}

export const clientId = tabClientId();

/**
 * The answer to an API call: `ok`, the HTTP `status` (0 when the request never got an
 * answer), the parsed JSON `body` (or {}), and a `message` fit to show a person.
 */
async function answer(res) {
  let body = {};
  try {
    body = await res.json();
  } catch (_) {
    body = {};
  }
  if (res.status === 401) markSignedOut();
  let message = "";
  if (!res.ok) {
    message = typeof body.message === "string" && body.message ? body.message : `HTTP ${res.status}`;
  }
  return { ok: res.ok, status: res.status, body, message };
}

function failed(err) {
  return { ok: false, status: 0, body: {}, message: `No answer from quart-dl (${err.message || err})` };
}

/** POST a JSON body (Content-Type application/json: a cross-site form cannot send it). */
export async function postJSON(path, body) {
  try {
    const res = await fetch(withToken(path), {
      method: "POST",
      cache: "no-store",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ ...body, client: clientId }),
    });
    return await answer(res);
  } catch (err) {
    return failed(err);
  }
}

/** POST multipart/form-data (the browser sets the boundary). */
export async function postForm(path, form) {
  form.set("client", clientId);
  try {
    const res = await fetch(withToken(path), {
      method: "POST",
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      body: form,
    });
    return await answer(res);
  } catch (err) {
    return failed(err);
  }
}

/** GET a JSON document; null when it cannot be had. */
export async function getJSON(path) {
  try {
    const res = await fetch(withToken(path), { cache: "no-store", headers: { Accept: "application/json" } });
    const a = await answer(res);
    return a.ok ? a.body : null;
  } catch (_) {
    return null;
  }
}

/**
 * What the token this page holds may do. Until the server says `act: true`, every action
 * control stays hidden (a read-only token, or LAN-open mode without `open_actions`).
 */
export async function loadAccess() {
  const body = await getJSON("api/access");
  const act = !!(body && body.act === true);
  document.body.dataset.act = String(act);
  return { act, ...(body || {}) };
}
