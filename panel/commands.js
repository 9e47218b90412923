// What each action control does: the plain verbs go straight to the action center, the
// others ask first (delete once, with "also delete files" unticked; a category or tags from
// the instance's own, through GET api/categories and api/tags; limits; a path; a name).
// The row menu, the detail view and the selection bar all use these, so the three agree.
// Torrents are keys (instance and hash): categories and tags are each instance's own, so a
// selection across instances is offered what any of them knows.

import { getJSON } from "./api.js";
import { ask, nameList } from "./dialogs.js";
import { byInstance, withInstance } from "./instances.js";

/** What `list` (GET api/categories or api/tags) says for each instance of `keys`: Map(id -> [name]). */
async function perInstance(keys, path, pick) {
  const out = new Map();
  for (const instance of byInstance(keys).keys()) {
    const body = (await getJSON(withInstance(path, instance))) || {};
    out.set(instance, pick(body));
  }
  return out;
}

const categoryNames = (body) => (Array.isArray(body.categories) ? body.categories : []).map((c) => String(c.name));
const tagNames = (body) => (Array.isArray(body.tags) ? body.tags.map(String) : []);
const union = (lists) => [...new Set([...lists].flat())];

const KiB = 1024;

export class Commands {
  /** @param {ActionCenter} center  @param {(hash) => string} nameOf */
  constructor(center, nameOf, recordOf) {
    this.center = center;
    this.nameOf = nameOf;
    this.recordOf = recordOf;
  }

  names(hashes) {
    return hashes.map((h) => this.nameOf(h) || h);
  }

  /** Menu items for `hashes` (torrent keys: one row, the detail view, or the selection). */
  items(hashes) {
    const one = hashes.length === 1;
    const run = (verb, params) => () => this.center.run(verb, hashes, params);
    const items = [
      { label: "Pause", testid: "menu-pause", run: run("pause") },
      { label: "Resume", testid: "menu-resume", run: run("resume") },
      { label: "Force start", testid: "menu-force_start", run: run("force_start", { value: true }) },
      { label: "Recheck", testid: "menu-recheck", run: run("recheck") },
      { label: "Reannounce", testid: "menu-reannounce", run: run("reannounce") },
      "-",
      { label: "Category…", testid: "menu-category", run: () => this.category(hashes) },
      { label: "Tags…", testid: "menu-tags", run: () => this.tags(hashes) },
      { label: "Speed limits…", testid: "menu-limits", run: () => this.limits(hashes) },
      { label: "Move…", testid: "menu-move", run: () => this.move(hashes) },
    ];
    if (one) items.push({ label: "Rename…", testid: "menu-rename", run: () => this.rename(hashes) });
    items.push(
      { label: "Queue top", testid: "menu-queue_top", run: run("queue_top") },
      { label: "Queue bottom", testid: "menu-queue_bottom", run: run("queue_bottom") },
      "-",
      { label: "Delete…", testid: "menu-delete", danger: true, run: () => this.delete(hashes) },
    );
    return items;
  }

  /** Resolves to true when the delete was asked for (not cancelled). */
  async delete(hashes) {
    const n = hashes.length;
    const got = await ask({
      title: n === 1 ? "Delete this torrent?" : `Delete ${n} torrents?`,
      testid: "delete-dialog",
      intro: nameList(this.names(hashes)),
      fields: [{ name: "delete_files", label: "Also delete the downloaded files", type: "checkbox", checked: false }],
      buttons: [{ value: "delete", label: "Delete", danger: true }],
      focusCancel: true,
    });
    if (!got) return false;
    this.center.run("delete", hashes, { delete_files: !!got.values.delete_files });
    return true;
  }

  async category(hashes) {
    const byInst = await perInstance(hashes, "api/categories", categoryNames);
    const known = union(byInst.values());
    const current = hashes.length === 1 ? (this.recordOf(hashes[0])?.category || "") : "";
    const got = await ask({
      title: "Category",
      testid: "category-dialog",
      intro: nameList(this.names(hashes)),
      fields: [{
        name: "category", label: "Category (empty for none)", value: current, suggestions: known,
        hint: known.length ? "" : "qBittorrent has no categories yet: a new name creates one.",
      }],
      buttons: [{ value: "set", label: "Set category" }],
    });
    if (!got) return;
    const category = got.values.category.trim();
    // Created where it is new: each instance has its own categories.
    this.center.run("set_category", hashes, (instance) => ({
      category,
      create: !!category && !(byInst.get(instance) || []).includes(category),
    }));
  }

  async tags(hashes) {
    const known = union((await perInstance(hashes, "api/tags", tagNames)).values());
    const got = await ask({
      title: "Tags",
      testid: "tags-dialog",
      intro: nameList(this.names(hashes)),
      fields: [{ name: "tags", label: "Tags, separated by commas", suggestions: known, placeholder: known.slice(0, 3).join(", ") }],
      buttons: [{ value: "remove", label: "Remove" }, { value: "add", label: "Add" }],
    }, (v) => (splitTags(v.tags).length ? "" : "Give at least one tag."));
    if (!got) return;
    const tags = splitTags(got.values.tags);
    this.center.run(got.button === "remove" ? "remove_tags" : "add_tags", hashes, { tags });
  }

  async limits(hashes) {
    const rec = hashes.length === 1 ? this.recordOf(hashes[0]) : null;
    const kib = (v) => (typeof v === "number" && v > 0 ? String(Math.round(v / KiB)) : "");
    const got = await ask({
      title: "Speed limits",
      testid: "limits-dialog",
      intro: nameList(this.names(hashes)),
      fields: [
        { name: "dl_limit", label: "Download limit (KiB/s, empty or 0 for none)", type: "number", value: kib(rec?.dl_limit) },
        { name: "up_limit", label: "Upload limit (KiB/s, empty or 0 for none)", type: "number", value: kib(rec?.up_limit) },
      ],
      buttons: [{ value: "set", label: "Set limits" }],
    }, (v) => ([v.dl_limit, v.up_limit].some((x) => x !== "" && !(Number(x) >= 0)) ? "Limits are numbers of KiB/s, 0 or more." : ""));
    if (!got) return;
    const toBytes = (x) => (x === "" ? 0 : Math.round(Number(x) * KiB));
    this.center.run("set_limits", hashes, { dl_limit: toBytes(got.values.dl_limit), up_limit: toBytes(got.values.up_limit) });
  }

  async move(hashes) {
    const rec = this.recordOf(hashes[0]);
    const got = await ask({
      title: "Move",
      testid: "move-dialog",
      intro: nameList(this.names(hashes)),
      fields: [{ name: "save_path", label: "New save path", value: rec?.save_path || "" }],
      buttons: [{ value: "move", label: "Move" }],
    }, (v) => (v.save_path.trim() ? "" : "Give a path."));
    if (!got) return;
    this.center.run("move", hashes, { save_path: got.values.save_path.trim() });
  }

  async rename(hashes) {
    const got = await ask({
      title: "Rename",
      testid: "rename-dialog",
      fields: [{ name: "name", label: "New name", value: this.nameOf(hashes[0]) || "" }],
      buttons: [{ value: "rename", label: "Rename" }],
    }, (v) => (v.name.trim() ? "" : "A name cannot be empty."));
    if (!got) return;
    this.center.run("rename", hashes, { name: got.values.name.trim() });
  }
}

export function splitTags(text) {
  return [...new Set(String(text).split(",").map((t) => t.trim()).filter(Boolean))];
}
