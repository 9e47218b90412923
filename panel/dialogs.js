// Small modal dialogs that ask for what an action needs (the delete confirmation, a category,
// tags, limits, a save path, a name). A native <dialog> opened with showModal(): the focus
// stays inside, Escape cancels, the focus goes back where it was. Torrent-supplied strings
// (names, existing categories and tags) are shown through setIsolated / bidiSafe.

import * as fmt from "./format.js";
import { setIsolated } from "./dom.js";

let seq = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A short list of the torrents an action is about: names isolated, "and N more" after 5. */
export function nameList(names) {
  const ul = el("ul", "d-names");
  ul.dataset.testid = "dialog-names";
  for (const n of names.slice(0, 5)) {
    const li = el("li");
    setIsolated(li, [n]);
    ul.appendChild(li);
  }
  if (names.length > 5) ul.appendChild(el("li", "more", `and ${names.length - 5} more`));
  return ul;
}

/**
 * Ask in a modal dialog. `spec`: {title, testid, intro?: Node, fields: [{name, label, type:
 * "text"|"number"|"checkbox"|"select", value?, checked?, options?: [[value, label]],
 * suggestions?: [str], placeholder?, hint?}], buttons: [{value, label, danger?}],
 * focusCancel?: start on Cancel}.
 * Resolves to {button, values} or null when cancelled. `check(values, button)` may return an
 * error text to keep the dialog open.
 */
export function ask(spec, check = () => "") {
  return new Promise((resolve) => {
    const id = `dlg${++seq}`;
    const dlg = el("dialog", "dialog");
    dlg.dataset.testid = spec.testid || "dialog";
    dlg.setAttribute("aria-labelledby", `${id}-t`);
    const form = el("form");
    form.method = "dialog";
    const h = el("h2", "", spec.title);
    h.id = `${id}-t`;
    form.appendChild(h);
    if (spec.intro) form.appendChild(spec.intro);
    const inputs = {};
    for (const f of spec.fields || []) {
      const wrap = el("label", f.type === "checkbox" ? "field check" : "field");
      const input = el(f.type === "select" ? "select" : "input");
      input.name = f.name;
      input.dataset.testid = `field-input-${f.name}`;
      if (f.type === "select") {
        for (const [v, label] of f.options || []) {
          const o = el("option", "", fmt.bidiSafe(label));
          o.value = v;
          input.appendChild(o);
        }
        input.value = f.value ?? "";
      } else if (f.type === "checkbox") {
        input.type = "checkbox";
        input.checked = !!f.checked;
      } else {
        input.type = f.type || "text";
        if (f.type === "number") input.min = "0";
        input.value = f.value ?? "";
        input.autocomplete = "off";
        input.spellcheck = false;
        if (f.placeholder) input.placeholder = f.placeholder;
        if (f.suggestions && f.suggestions.length) {
          const list = el("datalist");
          list.id = `${id}-${f.name}-list`;
          for (const s of f.suggestions) {
            const o = el("option");
            o.value = s;
            list.appendChild(o);
          }
          form.appendChild(list);
          input.setAttribute("list", list.id);
        }
      }
      const text = el("span", "field-label", f.label);
      if (f.type === "checkbox") wrap.append(input, text);
      else wrap.append(text, input);
      if (f.hint) wrap.appendChild(el("span", "field-hint", f.hint));
      form.appendChild(wrap);
      inputs[f.name] = input;
    }
    const error = el("p", "dialog-error");
    error.setAttribute("role", "alert");
    error.dataset.testid = "dialog-error";
    form.appendChild(error);
    const row = el("div", "dialog-buttons");
    const cancel = el("button", "button", "Cancel");
    cancel.type = "button";
    cancel.dataset.testid = "dialog-cancel";
    cancel.addEventListener("click", () => dlg.close(""));
    row.appendChild(cancel);
    for (const b of spec.buttons) {
      const btn = el("button", b.danger ? "button primary danger" : "button primary", b.label);
      btn.type = "submit";
      btn.value = b.value;
      btn.dataset.testid = `dialog-${b.value}`;
      row.appendChild(btn);
    }
    form.appendChild(row);
    dlg.appendChild(form);

    const values = () => {
      const v = {};
      for (const [name, input] of Object.entries(inputs)) v[name] = input.type === "checkbox" ? input.checked : input.value;
      return v;
    };
    let result = null;
    form.addEventListener("submit", (ev) => {
      const button = ev.submitter ? ev.submitter.value : spec.buttons[0].value;
      const v = values();
      const problem = check(v, button);
      if (problem) {
        ev.preventDefault();
        error.textContent = problem;
        return;
      }
      result = { button, values: v };
    });
    dlg.addEventListener("close", () => {
      dlg.remove();
      resolve(result);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    // A destructive question starts on Cancel: Enter alone never deletes anything.
    const first = spec.focusCancel ? cancel : form.querySelector("input:not([type=checkbox]), select");
    if (first) {
      first.focus();
      if (first.select) first.select();
    }
  });
}
