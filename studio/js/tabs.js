// Accessible tabs (WAI-ARIA tabs pattern): arrow keys, Home/End, roving tabindex.

import { h, mount } from "./dom.js";

/**
 * items: [{id, label, render(): Node, badge?: Node}]. Panels render lazily when
 * first shown and again on `refresh(id)`. Returns the container element with
 * `select(id)`, `refresh(id?)`, `selected()` and `setBadge(id, node)` methods.
 */
export function tabs(prefix, label, items, { initial, onChange } = {}) {
  const list = h("div", { class: "tablist", role: "tablist", "aria-label": label });
  const panels = h("div", { class: "tabpanels" });
  const entries = items.map((item) => {
    const tab = h("button", {
      type: "button", role: "tab", id: `${prefix}-tab-${item.id}`, class: "tab",
      "aria-controls": `${prefix}-panel-${item.id}`, "aria-selected": "false", tabindex: "-1", dataset: { tab: item.id },
    }, h("span", { text: item.label }), h("span", { class: "tab-badge" }));
    const panel = h("div", {
      role: "tabpanel", id: `${prefix}-panel-${item.id}`, class: "tabpanel", "aria-labelledby": tab.id, tabindex: "0", hidden: true,
    });
    list.append(tab);
    panels.append(panel);
    return { item, tab, panel, rendered: false };
  });
  let current = null;
  const show = (entry) => {
    if (!entry.rendered) {
      mount(entry.panel, entry.item.render());
      entry.rendered = true;
    }
  };
  const select = (id, focus = false) => {
    const entry = entries.find((e) => e.item.id === id) || entries[0];
    for (const e of entries) {
      const on = e === entry;
      e.tab.setAttribute("aria-selected", String(on));
      e.tab.tabIndex = on ? 0 : -1;
      e.tab.classList.toggle("active", on);
      e.panel.hidden = !on;
    }
    current = entry.item.id;
    show(entry);
    if (focus) entry.tab.focus();
    if (onChange) onChange(current);
  };
  list.addEventListener("click", (ev) => {
    const tab = ev.target.closest("[role=tab]");
    if (tab) select(tab.dataset.tab);
  });
  list.addEventListener("keydown", (ev) => {
    const i = entries.findIndex((e) => e.item.id === current);
    let next = null;
    if (ev.key === "ArrowRight" || ev.key === "ArrowDown") next = (i + 1) % entries.length;
    else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") next = (i - 1 + entries.length) % entries.length;
    else if (ev.key === "Home") next = 0;
    else if (ev.key === "End") next = entries.length - 1;
    if (next !== null) {
      ev.preventDefault();
      select(entries[next].item.id, true);
    }
  });
  const root = h("div", { class: "tabs" }, list, panels);
  root.select = select;
  root.selected = () => current;
  root.refresh = (id) => {
    for (const e of entries) {
      if (id && e.item.id !== id) continue;
      if (e.item.id === current) {
        mount(e.panel, e.item.render());
        e.rendered = true;
      } else e.rendered = false;
    }
  };
  root.setBadge = (id, node) => {
    const e = entries.find((x) => x.item.id === id);
    if (e) mount(e.tab.querySelector(".tab-badge"), node || "");
  };
  select(initial || entries[0].item.id);
  return root;
}
