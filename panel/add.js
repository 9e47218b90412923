// The add dialog: magnet links and http(s) URLs (one a line) and .torrent files, picked or
// dropped (on the dialog's drop zone, or anywhere on the page: the dialog opens with them),
// with save path, category (the instance's own, from GET api/categories), tags and "start
// stopped". Files go as multipart/form-data `torrents` parts to POST api/torrents/add; links
// alone as JSON. The dialog stays open with qBittorrent's reason when it refuses.
// With several qBittorrent instances the dialog asks which one (the first by default) and
// sends its `instance`; the categories offered are that instance's.

import { getJSON, postForm, postJSON } from "./api.js";
import { splitTags } from "./commands.js";
import * as fmt from "./format.js";
import { withInstance } from "./instances.js";

const $ = (sel, root = document) => root.querySelector(sel);

function isTorrentFile(f) {
  return /\.torrent$/i.test(f.name) || f.type === "application/x-bittorrent";
}

export class AddDialog {
  /** @param {(text: string) => void} notify  a toast */
  constructor(dialog, notify) {
    this.dlg = dialog;
    this.notify = notify;
    this.files = [];
    this.form = $("form", dialog);
    this.urls = $("#add-urls", dialog);
    this.fileInput = $("#add-file", dialog);
    this.drop = $("#add-drop", dialog);
    this.fileList = $("#add-files", dialog);
    this.savePath = $("#add-save-path", dialog);
    this.category = $("#add-category", dialog);
    this.tags = $("#add-tags", dialog);
    this.stopped = $("#add-stopped", dialog);
    this.error = $("#add-error", dialog);
    this.submit = $("#add-submit", dialog);
    this.instanceField = $("#add-instance-field", dialog);
    this.instance = $("#add-instance", dialog);
    this.bind();
  }

  /** The instances to offer ([{id, name}], configured order): the chooser shows for several. */
  setInstances(list) {
    const ids = list.filter((i) => i.id).map((i) => [i.id, i.name || i.id]);
    const key = JSON.stringify(ids);
    if (key === this.instancesKey) return;
    this.instancesKey = key;
    const keep = this.instance.value;
    this.instance.replaceChildren(...ids.map(([id, name]) => {
      const o = document.createElement("option");
      o.value = id;
      o.textContent = fmt.bidiSafe(name);
      return o;
    }));
    if (ids.some(([id]) => id === keep)) this.instance.value = keep;
    this.instanceField.hidden = ids.length < 2;
  }

  /** The chosen instance, or null with one (the server's primary, the only one). */
  chosen() {
    return this.instanceField.hidden ? null : this.instance.value || null;
  }

  bind() {
    $("#add-cancel", this.dlg).addEventListener("click", () => this.dlg.close());
    this.instance.addEventListener("change", () => this.loadCategories());
    this.fileInput.addEventListener("change", () => {
      this.addFiles([...this.fileInput.files]);
      this.fileInput.value = "";
    });
    for (const type of ["dragenter", "dragover"]) {
      this.drop.addEventListener(type, (ev) => {
        ev.preventDefault();
        this.drop.classList.add("over");
      });
    }
    this.drop.addEventListener("dragleave", () => this.drop.classList.remove("over"));
    this.drop.addEventListener("drop", (ev) => {
      ev.preventDefault();
      ev.stopPropagation();
      this.drop.classList.remove("over");
      this.dropped(ev.dataTransfer);
    });
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.send();
    });
    // Files dropped anywhere on the page (with actions allowed) open the dialog with them.
    document.addEventListener("dragover", (ev) => {
      if (this.allowed() && hasFiles(ev.dataTransfer)) ev.preventDefault();
    });
    document.addEventListener("drop", (ev) => {
      if (!this.allowed() || !hasFiles(ev.dataTransfer)) return;
      ev.preventDefault();
      if (!this.dlg.open) this.open();
      this.dropped(ev.dataTransfer);
    });
  }

  allowed() {
    return document.body.dataset.act === "true";
  }

  dropped(dt) {
    if (!dt) return;
    this.addFiles([...(dt.files || [])]);
    const text = dt.getData && dt.getData("text/plain");
    if (text && /^(magnet:|https?:)/im.test(text.trim())) {
      this.urls.value = [this.urls.value.trim(), text.trim()].filter(Boolean).join("\n");
    }
  }

  addFiles(files) {
    const bad = files.filter((f) => !isTorrentFile(f));
    for (const f of files) if (isTorrentFile(f)) this.files.push(f);
    this.error.textContent = bad.length ? `Not a .torrent file: ${bad.map((f) => fmt.isolate(f.name)).join(", ")}` : "";
    this.showFiles();
  }

  showFiles() {
    const items = this.files.map((f, i) => {
      const li = document.createElement("li");
      const name = document.createElement("bdi");
      name.textContent = fmt.bidiSafe(f.name);
      const rm = document.createElement("button");
      rm.type = "button";
      rm.className = "link-button";
      rm.textContent = "Remove";
      rm.setAttribute("aria-label", `Remove ${fmt.isolate(f.name)}`);
      rm.addEventListener("click", () => {
        this.files.splice(i, 1);
        this.showFiles();
      });
      li.dataset.testid = "add-file-item";
      li.append(name, ` (${fmt.bytes(f.size)}) `, rm);
      return li;
    });
    this.fileList.replaceChildren(...items);
  }

  async open() {
    this.files = [];
    this.showFiles();
    this.error.textContent = "";
    this.urls.value = "";
    this.submit.disabled = false;
    if (this.instance.options.length) this.instance.selectedIndex = 0; // the first instance, each time
    if (!this.dlg.open) this.dlg.showModal();
    this.urls.focus();
    await this.loadCategories();
  }

  /** The chosen instance's categories in the select (the one chosen before kept if it has it). */
  async loadCategories() {
    const body = await getJSON(withInstance("api/categories", this.chosen()));
    const cats = body && Array.isArray(body.categories) ? body.categories : [];
    const keep = this.category.value;
    const opts = [["", "None"], ...cats.map((c) => [String(c.name), String(c.name)])].map(([v, label]) => {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = fmt.bidiSafe(label);
      return o;
    });
    this.category.replaceChildren(...opts);
    if ([...this.category.options].some((o) => o.value === keep)) this.category.value = keep;
  }

  async send() {
    const urls = this.urls.value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    const bad = urls.find((u) => !/^(magnet:\?|https?:\/\/)/i.test(u));
    if (bad) {
      this.error.textContent = `Not a magnet link or http(s) URL: ${fmt.isolate(bad)}`;
      return;
    }
    if (!urls.length && !this.files.length) {
      this.error.textContent = "Give a magnet link, a URL or a .torrent file.";
      return;
    }
    const opts = {};
    if (this.savePath.value.trim()) opts.save_path = this.savePath.value.trim();
    if (this.category.value) opts.category = this.category.value;
    const tags = splitTags(this.tags.value);
    const instance = this.chosen();
    if (instance) opts.instance = instance;
    this.submit.disabled = true;
    this.error.textContent = "";
    let res;
    if (this.files.length) {
      const form = new FormData();
      for (const f of this.files) form.append("torrents", f, f.name);
      if (urls.length) form.set("urls", urls.join("\n"));
      for (const [k, v] of Object.entries(opts)) form.set(k, v);
      if (tags.length) form.set("tags", tags.join(","));
      form.set("stopped", String(this.stopped.checked));
      res = await postForm("api/torrents/add", form);
    } else {
      res = await postJSON("api/torrents/add", { urls, ...opts, ...(tags.length ? { tags } : {}), stopped: this.stopped.checked });
    }
    this.submit.disabled = false;
    if (!res.ok) {
      this.error.textContent = res.status === 413 ? "Too large for quart-dl's upload limit." : res.message;
      return;
    }
    const n = typeof res.body.added === "number" ? res.body.added : urls.length + this.files.length;
    this.dlg.close();
    this.notify(n === 1 ? "Added 1 torrent" : `Added ${n} torrents`);
  }
}

function hasFiles(dt) {
  return !!dt && [...(dt.types || [])].includes("Files");
}
