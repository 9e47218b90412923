// Small DOM writes shared by the views: they touch the DOM only when what is shown changes,
// and they are how torrent-supplied text reaches the page (each string in its own <bdi>,
// so its direction, whatever it holds, stays inside it; see format.bidiSafe).

import { bidiSafe } from "./format.js";

const shown = new WeakMap(); // node -> what setIsolated last put in it

/** Set `node`'s text, unless it already shows exactly that. */
export function setText(node, text) {
  if (node.textContent !== text) {
    node.textContent = text;
    shown.delete(node);
  }
}

/** Set an attribute, unless it already has that value. */
export function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

/**
 * Show torrent-supplied strings in `node`, each in a <bdi> of its own (bidi-isolated, its
 * direction taken from its own first strong character), with our `sep` between them:
 * a category's unclosed override cannot reverse the tags after it, nor a name our words.
 */
export function setIsolated(node, pieces, sep = "") {
  const key = `${sep}\u0000${pieces.join("\u0000")}`;
  if (shown.get(node) === key) return;
  shown.set(node, key);
  const parts = [];
  pieces.forEach((piece, i) => {
    if (i) parts.push(sep);
    const b = document.createElement("bdi");
    b.textContent = bidiSafe(piece);
    parts.push(b);
  });
  node.replaceChildren(...parts);
}
