// Human-readable formatting of the protocol's raw numbers, the phase vocabulary, and the
// one helper that makes torrent-supplied strings safe to compose with our own text.
// Pure functions only: the dashboard and the detail view both use them, and they are
// the one place that decides what "31.4 %" or "1h 2m" means.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units with three significant digits: "0 B", "512 B", "1.46 MiB". */
export function bytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const digits = v < 10 ? 2 : v < 100 ? 1 : 0;
  return `${v.toFixed(digits)} ${UNITS[i]}`;
}

/** Bytes per second: "0 B/s", "200 KiB/s". */
export function speed(n) {
  return `${bytes(n)}/s`;
}

/** Seconds to "42s", "5m 3s", "1h 2m", "3d 4h"; null/negative/huge to "∞". */
export function eta(s) {
  if (s === null || s === undefined || typeof s !== "number" || !Number.isFinite(s) || s < 0) {
    return "∞";
  }
  // qBittorrent's own "infinite" is 8640000 s (100 days); treat anything that long as such.
  if (s >= 8640000) return "∞";
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  const d = Math.floor(h / 24);
  return `${d}d ${h % 24}h`;
}

/**
 * Percent done as a number with one decimal and its text. qBittorrent may report 1.0 while
 * bytes are still missing, so 100 % is shown only when the record says `complete`.
 */
export function percent(rec) {
  let p = typeof rec.progress === "number" && Number.isFinite(rec.progress) ? rec.progress : 0;
  p = Math.max(0, Math.min(1, p));
  let value;
  if (rec.complete) {
    value = 100;
  } else {
    value = Math.floor(p * 1000) / 10; // floor: never round 99.96 up to "100.0"
    if (value >= 100) value = 99.9;
  }
  const text = value === 100 ? "100%" : `${value.toFixed(1)}%`;
  return { value, fraction: rec.complete ? 1 : Math.min(p, 0.999), text };
}

/** Share ratio with two decimals; qBittorrent's cap (≥ 9999) and -1 shown as "∞" / "–". */
export function ratio(r) {
  if (typeof r !== "number" || !Number.isFinite(r) || r < 0) return "–";
  if (r >= 9999) return "∞";
  return r.toFixed(2);
}

/** Elapsed milliseconds as "just now", "5 s", "3 min", "2 h". */
export function ago(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return `${h} h`;
}

/** Unix seconds to the browser's local date and time; null to "–". */
export function dateTime(unix) {
  if (typeof unix !== "number" || !Number.isFinite(unix) || unix <= 0) return "–";
  return new Date(unix * 1000).toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** Phases in display order, with their words. */
export const PHASES = ["downloading", "seeding", "stalled", "paused", "queued", "checking", "error", "unknown"];

export const PHASE_LABEL = {
  downloading: "Downloading",
  seeding: "Seeding",
  stalled: "Stalled",
  paused: "Paused",
  queued: "Queued",
  checking: "Checking",
  error: "Error",
  unknown: "Unknown",
};

const STATE_PHASE = {
  downloading: "downloading",
  forcedDL: "downloading",
  metaDL: "downloading",
  forcedMetaDL: "downloading",
  uploading: "seeding",
  forcedUP: "seeding",
  stalledUP: "seeding",
  stalledDL: "stalled",
  pausedDL: "paused",
  pausedUP: "paused",
  stoppedDL: "paused",
  stoppedUP: "paused",
  queuedDL: "queued",
  queuedUP: "queued",
  checkingDL: "checking",
  checkingUP: "checking",
  checkingResumeData: "checking",
  moving: "checking",
  allocating: "checking",
  error: "error",
  missingFiles: "error",
};

/** The record's phase; derived from the raw state when the server did not send one. */
export function phaseOf(rec) {
  if (rec.phase && PHASE_LABEL[rec.phase]) return rec.phase;
  return STATE_PHASE[rec.state] || "unknown";
}

// ---- torrent-supplied text: names, categories, tags, save paths, state words ----
//
// Unicode's directional formatting characters (UAX #9) reorder text: an unclosed U+202E
// (right-to-left override) in a torrent name reverses everything after it in the same
// paragraph, which in a composed string such as document.title is our own text. So every
// torrent-supplied string goes through bidiSafe(): controls that open something the string
// never closes, or close something it never opened, are dropped (the classic spoof,
// "clip<RLO>gpj.exe" shown as "clipexe.jpg", relies on exactly that), and paragraph
// separators, which end every embedding and isolate, become spaces. What remains is
// balanced, so an isolate around it ends where the string ends. In HTML that isolate is a
// <bdi> (see dom.js); in plain text (document.title, title attributes) it is isolate().

const LRE = 0x202a;
const RLE = 0x202b;
const PDF = 0x202c;
const LRO = 0x202d;
const RLO = 0x202e;
const LRI = 0x2066;
const RLI = 0x2067;
const FSI = 0x2068;
const PDI = 0x2069;
const NEEDS_WORK = /[\u202a-\u202e\u2066-\u2069\n\r\u001c-\u001e\u0085\u2029]/;
const PARAGRAPH_SEPARATORS = /[\n\r\u001c-\u001e\u0085\u2029]/g;

/** `text` with its directional controls balanced and no paragraph separators (see above). */
export function bidiSafe(text) {
  const s = String(text ?? "");
  if (!NEEDS_WORK.test(s)) return s;
  const drop = new Set();
  const open = []; // [index, isIsolate] of the controls not closed yet, innermost last
  for (let i = 0; i < s.length; i += 1) {
    const c = s.charCodeAt(i);
    if (c === LRE || c === RLE || c === LRO || c === RLO) {
      open.push([i, false]);
    } else if (c === LRI || c === RLI || c === FSI) {
      open.push([i, true]);
    } else if (c === PDF) {
      // Closes the innermost embedding, and never reaches out of an isolate.
      if (open.length && !open[open.length - 1][1]) open.pop();
      else drop.add(i);
    } else if (c === PDI) {
      // Closes the innermost isolate and every embedding still open inside it.
      let k = open.length - 1;
      while (k >= 0 && !open[k][1]) k -= 1;
      if (k < 0) {
        drop.add(i);
      } else {
        for (const [j, isolate] of open.splice(k)) if (!isolate) drop.add(j);
      }
    }
  }
  for (const [j] of open) drop.add(j);
  let out = "";
  for (let i = 0; i < s.length; i += 1) if (!drop.has(i)) out += s[i];
  return out.replace(PARAGRAPH_SEPARATORS, " ");
}

/**
 * A torrent-supplied string for plain text that goes on with our own words (document.title,
 * title attributes): first-strong isolate (U+2068) … pop directional isolate (U+2069) around
 * its bidiSafe() form, so it cannot reorder what follows it, whatever it holds.
 */
export function isolate(text) {
  return `\u2068${bidiSafe(text)}\u2069`;
}
