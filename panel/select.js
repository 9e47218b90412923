// Which rows are selected, and the bar that acts on them.
//
// A click on a row's check box toggles it; a shift-click selects (or clears) every row shown
// between it and the last one clicked, in the order on screen; "Select all" takes every row
// the filter and search show. A torrent that leaves qBittorrent leaves the selection.
// Rows are torrent keys (instance and hash, instances.js): a selection may span instances.

export class Selection {
  /** @param {() => string[]} visibleKeys the rows on screen, in order */
  constructor(visibleKeys, changed) {
    this.visibleKeys = visibleKeys;
    this.changed = changed; // (keys touched) => void
    this.set = new Set();
    this.anchor = null;
  }

  has(hash) {
    return this.set.has(hash);
  }

  get size() {
    return this.set.size;
  }

  list() {
    return [...this.set];
  }

  /** A check box was clicked (its new state `on`), with or without shift. */
  click(hash, on, shift) {
    const touched = [hash];
    if (shift && this.anchor && this.anchor !== hash) {
      const order = this.visibleKeys();
      const a = order.indexOf(this.anchor);
      const b = order.indexOf(hash);
      if (a >= 0 && b >= 0) {
        for (const h of order.slice(Math.min(a, b), Math.max(a, b) + 1)) {
          if (on) this.set.add(h);
          else this.set.delete(h);
          touched.push(h);
        }
      }
    }
    if (on) this.set.add(hash);
    else this.set.delete(hash);
    this.anchor = hash;
    this.changed(touched);
  }

  /** Select every visible row, or clear the selection when all of them already are. */
  toggleAll() {
    const order = this.visibleKeys();
    const all = order.length > 0 && order.every((h) => this.set.has(h));
    const touched = all ? [...this.set] : order;
    if (all) this.set.clear();
    else for (const h of order) this.set.add(h);
    this.changed(touched);
  }

  clear() {
    const touched = [...this.set];
    this.set.clear();
    this.anchor = null;
    this.changed(touched);
  }

  drop(hash) {
    if (this.set.delete(hash)) this.changed([hash]);
  }

  /** For the "select all" box: "none", "some" or "all" of the visible rows. */
  visibleState() {
    const order = this.visibleKeys();
    let n = 0;
    for (const h of order) if (this.set.has(h)) n += 1;
    return n === 0 ? "none" : n === order.length ? "all" : "some";
  }
}

/**
 * The selection bar: "N selected", the common verbs, More (the rest, as a menu), Delete,
 * Clear. Shown while something is selected; sticks to the bottom of the window.
 */
export class BulkBar {
  constructor(root, selection, commands, openMenu) {
    this.root = root;
    this.sel = selection;
    this.count = root.querySelector("#bulk-count");
    const run = (verb, params) => () => commands.center.run(verb, this.sel.list(), params);
    const on = (id, fn) => root.querySelector(id).addEventListener("click", fn);
    on("#bulk-pause", run("pause"));
    on("#bulk-resume", run("resume"));
    on("#bulk-delete", () => commands.delete(this.sel.list()).then((asked) => asked && this.sel.clear()));
    on("#bulk-clear", () => this.sel.clear());
    const more = root.querySelector("#bulk-more");
    more.addEventListener("click", () => {
      const items = commands.items(this.sel.list())
        .filter((i) => i === "-" || !["menu-pause", "menu-resume", "menu-delete"].includes(i.testid));
      while (items.length && items[items.length - 1] === "-") items.pop();
      openMenu(more, items);
    });
  }

  render() {
    const n = this.sel.size;
    this.root.hidden = n === 0;
    const text = `${n.toLocaleString()} selected`;
    if (this.count.textContent !== text) this.count.textContent = text;
  }
}
