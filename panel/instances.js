// Several qBittorrent instances in one panel: how a torrent is named (instance and hash), how
// an address and a REST path carry the instance, and the sums over instances.
//
// Why a key and not the hash: the same torrent in two qBittorrents (cross-seeding) is two
// torrents, with their own progress, state and actions. Every map, row, selection and action
// mark is keyed by `keyOf(instance, hash)`. `instance` is null only for a v1 stream (an older
// server, or the per-torrent stream of an address without one): the server's primary instance,
// which every route without `instance` means.

/** What an instance id looks like (the server refuses any other). */
export const INSTANCE_RE = /^[a-z][a-z0-9_-]{0,31}$/;

/** The key of one torrent of one instance ("home/5a1b…"), or the bare hash for the primary of v1. */
export function keyOf(instance, hash) {
  return instance ? `${instance}/${hash}` : hash;
}

/** {instance, hash} of a key (instance null for a bare hash). */
export function splitKey(key) {
  const i = key.indexOf("/");
  return i < 0 ? { instance: null, hash: key } : { instance: key.slice(0, i), hash: key.slice(i + 1) };
}

/** Keys grouped by instance, in first-seen order: Map(instance|null -> [hash]). */
export function byInstance(keys) {
  const groups = new Map();
  for (const key of keys) {
    const { instance, hash } = splitKey(key);
    if (!groups.has(instance)) groups.set(instance, []);
    groups.get(instance).push(hash);
  }
  return groups;
}

/** `path` with `instance=<id>` added to its query (unchanged for null: the primary). */
export function withInstance(path, instance) {
  if (!instance) return path;
  return path + (path.includes("?") ? "&" : "?") + "instance=" + encodeURIComponent(instance);
}

/**
 * The detail view's address. With one instance it stays `#/torrent/<hash>` (as before several
 * instances existed, so bookmarks keep working); with several it names the instance.
 */
export function detailAddress(hash, instance, multi) {
  return withInstance(`#/torrent/${hash}`, multi ? instance : null);
}

const SUMMED = ["dl_speed", "up_speed", "dl_total", "up_total"];
const LIMITS = ["dl_limit", "up_limit"];

/**
 * The total over instances' transfer objects, as the server's snapshot total counts it:
 * speeds and totals summed, limits summed unless one instance is unlimited (0: then the total
 * is unlimited too), `alt_speed` true if any instance has it on. A diff carries only its own
 * instance's transfer, so the client adds them up itself.
 */
export function sumTransfer(transfers) {
  const list = transfers.filter((t) => t && typeof t === "object");
  if (!list.length) return null;
  const total = {};
  const sum = (k) => list.reduce((s, t) => s + (typeof t[k] === "number" ? t[k] : 0), 0);
  for (const k of SUMMED) {
    if (list.some((t) => typeof t[k] === "number")) total[k] = sum(k);
  }
  for (const k of LIMITS) {
    if (list.some((t) => typeof t[k] === "number")) total[k] = list.some((t) => t[k] === 0) ? 0 : sum(k);
  }
  if (list.some((t) => typeof t.alt_speed === "boolean")) total.alt_speed = list.some((t) => t.alt_speed === true);
  return total;
}

/** "down" (unreachable, refusing the password), "connecting", or "ok": what a status means. */
export function health(status) {
  const q = status && status.qbittorrent;
  if (q === "unreachable" || q === "auth_failed") return "down";
  if (q === "connecting") return "connecting";
  return "ok";
}
