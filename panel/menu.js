// One pop-up menu for the whole page (a row's "More actions", the detail view's, the
// selection bar's): built when opened, so a thousand rows cost a thousand buttons, not a
// thousand menus. Keyboard: arrows, Home/End move, Enter/Space choose, Escape/Tab close
// (Escape gives the focus back to the button that opened it).

let open = null; // {menu, button}

function close(focusButton) {
  if (!open) return;
  const { menu, button } = open;
  open = null;
  menu.remove();
  button.setAttribute("aria-expanded", "false");
  if (focusButton) button.focus();
}

document.addEventListener("pointerdown", (ev) => {
  if (open && !open.menu.contains(ev.target) && ev.target !== open.button && !open.button.contains(ev.target)) close(false);
}, true);
window.addEventListener("resize", () => close(false));
window.addEventListener("hashchange", () => close(false));

/**
 * Open a menu under `button` with `items`: [{label, testid, run(), danger?}] or "-" for a
 * separator. Opening the same button's menu again closes it.
 */
export function openMenu(button, items) {
  if (open && open.button === button) {
    close(true);
    return;
  }
  close(false);
  const menu = document.createElement("div");
  menu.className = "menu";
  menu.setAttribute("role", "menu");
  menu.dataset.testid = "action-menu";
  if (button.id) menu.setAttribute("aria-labelledby", button.id);
  for (const item of items) {
    if (item === "-") {
      const sep = document.createElement("div");
      sep.className = "menu-sep";
      sep.setAttribute("role", "separator");
      menu.appendChild(sep);
      continue;
    }
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "menuitem");
    b.tabIndex = -1;
    b.textContent = item.label;
    b.dataset.testid = item.testid;
    if (item.danger) b.classList.add("danger");
    b.addEventListener("click", () => {
      close(false);
      item.run();
    });
    menu.appendChild(b);
  }
  menu.addEventListener("keydown", (ev) => {
    const list = [...menu.querySelectorAll("[role=menuitem]")];
    const i = list.indexOf(document.activeElement);
    let next = -1;
    if (ev.key === "ArrowDown") next = (i + 1) % list.length;
    else if (ev.key === "ArrowUp") next = (i - 1 + list.length) % list.length;
    else if (ev.key === "Home") next = 0;
    else if (ev.key === "End") next = list.length - 1;
    else if (ev.key === "Escape") {
      ev.preventDefault();
      ev.stopPropagation(); // the menu's Escape, not the page's (which clears the selection)
      close(true);
      return;
    } else if (ev.key === "Tab") {
      close(false);
      return;
    }
    if (next >= 0) {
      ev.preventDefault();
      list[next].focus();
    }
  });
  document.body.appendChild(menu);
  button.setAttribute("aria-expanded", "true");
  open = { menu, button };
  place(menu, button);
  const first = menu.querySelector("[role=menuitem]");
  if (first) first.focus();
}

/** Under the button, right-aligned to it, kept inside the viewport (above it if need be). */
function place(menu, button) {
  const r = button.getBoundingClientRect();
  const m = menu.getBoundingClientRect();
  const vw = document.documentElement.clientWidth;
  const vh = window.innerHeight;
  let left = Math.min(Math.max(8, r.right - m.width), vw - m.width - 8);
  let top = r.bottom + 4;
  if (top + m.height > vh - 8 && r.top - m.height - 4 > 8) top = r.top - m.height - 4;
  left = Math.max(8, left);
  menu.style.left = `${left + window.scrollX}px`;
  menu.style.top = `${top + window.scrollY}px`;
}
