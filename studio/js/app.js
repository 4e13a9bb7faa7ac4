// Studio shell: theme, sidebar (assistants + threads), hash router, home and
// threads screens. The assistant and thread screens live in their own modules.

import { api } from "./api.js";
import { h, mount, icon, button, badge, relTime, shortId, toast, parseJson } from "./dom.js";
import { assistantView } from "./assistant.js";
import { threadView } from "./thread.js";

const THEME_KEY = "skeino.studio.theme";
const ASSISTANT_KEY = "skeino.studio.assistant";

export const store = {
  assistants: [],
  threads: [],
  statusFilter: "",
  info: null,
  get selectedAssistant() {
    try {
      return localStorage.getItem(ASSISTANT_KEY);
    } catch {
      return null;
    }
  },
  set selectedAssistant(id) {
    try {
      localStorage.setItem(ASSISTANT_KEY, id);
    } catch {
      /* ignore */
    }
  },
  assistant(id) {
    return this.assistants.find((a) => a.assistant_id === id || a.graph_id === id) || null;
  },
};

// ---------------------------------------------------------------- theme

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const btn = document.getElementById("theme-toggle");
  if (btn) {
    const next = theme === "dark" ? "light" : "dark";
    btn.setAttribute("aria-label", `Switch to ${next} theme`);
    btn.title = `Switch to ${next} theme`;
    btn.setAttribute("aria-pressed", String(theme === "dark"));
    mount(btn, icon(theme === "dark" ? "sun" : "moon", 18));
  }
}

function initTheme() {
  let theme = null;
  try {
    theme = localStorage.getItem(THEME_KEY);
  } catch {
    /* ignore */
  }
  if (theme !== "dark" && theme !== "light") {
    theme = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  applyTheme(theme);
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      /* ignore */
    }
    applyTheme(next);
  });
}

// ---------------------------------------------------------------- sidebar

function setSidebar(open) {
  const sidebar = document.getElementById("sidebar");
  const toggle = document.getElementById("menu-toggle");
  sidebar.classList.toggle("open", open);
  toggle.setAttribute("aria-expanded", String(open));
  document.body.classList.toggle("drawer-open", open);
}

function currentRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "home", id: parts[1] || null };
}

export function renderAssistantList() {
  const list = document.getElementById("assistant-list");
  const route = currentRoute();
  mount(list, store.assistants.length ? store.assistants.map((a) => {
    const active = route.name === "assistants" && (route.id === a.assistant_id || route.id === a.graph_id);
    return h("li", {}, h("a", {
      href: `#/assistants/${encodeURIComponent(a.assistant_id)}`, class: ["nav-item", active && "active"],
      "aria-current": active ? "page" : undefined, dataset: { testid: "assistant-item", graphId: a.graph_id, assistantId: a.assistant_id },
    }, h("span", { class: "nav-icon", "aria-hidden": "true" }, icon("graph", 15)),
      h("span", { class: "nav-text" }, h("span", { class: "nav-title", text: a.name || a.graph_id }),
        h("span", { class: "nav-sub", text: a.name && a.name !== a.graph_id ? `${a.graph_id} · v${a.version}` : `v${a.version}` }))));
  }) : h("li", { class: "muted small pad", text: "No assistants." }));
}

export function renderThreadList() {
  const list = document.getElementById("thread-list");
  const route = currentRoute();
  if (!store.threads.length) {
    mount(list, h("li", { class: "muted small pad", text: store.statusFilter ? `No ${store.statusFilter} threads.` : "No threads yet." }));
    return;
  }
  mount(list, store.threads.map((t) => {
    const active = route.name === "threads" && route.id === t.thread_id;
    const graph = t.metadata && t.metadata.graph_id;
    return h("li", {}, h("a", {
      href: `#/threads/${encodeURIComponent(t.thread_id)}`, class: ["nav-item", "thread-item", active && "active"],
      "aria-current": active ? "page" : undefined, dataset: { testid: "thread-item", threadId: t.thread_id, status: t.status },
    }, h("span", { class: "nav-text" },
      h("span", { class: "nav-title mono", text: shortId(t.thread_id) }),
      h("span", { class: "nav-sub", text: [graph, relTime(t.updated_at)].filter(Boolean).join(" · ") })),
    badge(t.status)));
  }));
}

export async function refreshAssistants() {
  try {
    const list = await api.searchAssistants({ limit: 100, sort_by: "graph_id", sort_order: "asc" });
    store.assistants = list.sort((a, b) => {
      const sa = a.metadata && a.metadata.created_by === "system" ? 0 : 1;
      const sb = b.metadata && b.metadata.created_by === "system" ? 0 : 1;
      return sa - sb || String(a.graph_id).localeCompare(b.graph_id) || String(a.name).localeCompare(b.name);
    });
  } catch (err) {
    toast(`Could not load assistants: ${err.message}`, "error");
  }
  renderAssistantList();
}

let threadsSeq = 0;
export async function refreshThreads() {
  const seq = ++threadsSeq;
  try {
    const body = { limit: 50, sort_by: "updated_at", sort_order: "desc" };
    if (store.statusFilter) body.status = store.statusFilter;
    const threads = await api.searchThreads(body);
    if (seq !== threadsSeq) return;
    store.threads = threads;
  } catch (err) {
    toast(`Could not load threads: ${err.message}`, "error");
  }
  renderThreadList();
  document.dispatchEvent(new CustomEvent("studio:threads"));
}

/** Create a thread for an assistant and open it. */
export async function newThread(assistantId) {
  const a = store.assistant(assistantId || store.selectedAssistant) || store.assistants[0];
  const metadata = a ? { graph_id: a.graph_id, assistant_id: a.assistant_id } : {};
  try {
    const t = await api.createThread({ metadata });
    if (a) store.selectedAssistant = a.assistant_id;
    await refreshThreads();
    location.hash = `#/threads/${encodeURIComponent(t.thread_id)}`;
    return t;
  } catch (err) {
    toast(`Could not create thread: ${err.message}`, "error");
    return null;
  }
}

export async function deleteThread(threadId) {
  try {
    await api.deleteThread(threadId);
    toast(`Thread ${shortId(threadId)} deleted`, "success");
    if (currentRoute().name === "threads" && currentRoute().id === threadId) location.hash = "#/threads";
    await refreshThreads();
    return true;
  } catch (err) {
    toast(`Could not delete thread: ${err.message}`, "error");
    return false;
  }
}

/** A delete button that asks for confirmation in place (no blocking dialog). */
export function confirmButton(label, confirmLabel, onConfirm, { cls = "btn-danger-ghost", iconName = "trash", hideLabel = false } = {}) {
  let armed = false;
  let timer = null;
  const btn = button(label, { icon: iconName, cls, hideLabel });
  const labelEl = () => btn.querySelector("span");
  btn.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      btn.classList.add("armed");
      btn.setAttribute("aria-label", confirmLabel);
      if (labelEl()) labelEl().textContent = confirmLabel;
      else btn.title = confirmLabel;
      timer = setTimeout(() => {
        armed = false;
        btn.classList.remove("armed");
        btn.setAttribute("aria-label", label);
        if (labelEl()) labelEl().textContent = label;
      }, 4000);
      return;
    }
    clearTimeout(timer);
    btn.disabled = true;
    await onConfirm();
    btn.disabled = false;
  });
  return btn;
}

// ---------------------------------------------------------------- screens

function homeView(main) {
  const cards = h("div", { class: "card-grid" });
  const render = () => {
    mount(cards, store.assistants.map((a) => h("a", { class: "card card-link", href: `#/assistants/${encodeURIComponent(a.assistant_id)}` },
      h("div", { class: "card-title" }, icon("graph", 18), h("span", { text: a.name || a.graph_id })),
      h("div", { class: "muted small" }, `graph `, h("code", { text: a.graph_id }), ` · v${a.version}`),
      a.description ? h("p", { class: "small", text: a.description }) : null)));
  };
  render();
  mount(main, h("div", { class: "page" },
    h("header", { class: "page-head" },
      h("div", {}, h("h1", { text: "Welcome to Studio" }),
        h("p", { class: "muted", text: "Inspect graphs, chat with agents, watch runs live, travel through checkpoints and answer human-in-the-loop interrupts." })),
      button("New thread", { icon: "plus", cls: "btn-primary", onClick: () => newThread() })),
    h("h2", { class: "section-title", text: "Assistants" }), cards));
  return { refresh: render };
}

function threadsPage(main) {
  const table = h("div", { class: "table-wrap" });
  const assistantSelect = h("select", { id: "new-thread-assistant" });
  const metaInput = h("input", { id: "new-thread-metadata", type: "text", class: "mono", placeholder: '{"topic": "demo"}' });
  const statusSelect = h("select", { id: "threads-page-status" },
    ["", "idle", "busy", "interrupted", "error"].map((s) => h("option", { value: s, text: s || "any status", selected: s === store.statusFilter })));
  statusSelect.addEventListener("change", () => {
    store.statusFilter = statusSelect.value;
    document.getElementById("thread-status-filter").value = statusSelect.value;
    refreshThreads();
  });
  const fillAssistants = () => mount(assistantSelect, store.assistants.map((a) => h("option", {
    value: a.assistant_id, text: a.name && a.name !== a.graph_id ? `${a.name} (${a.graph_id})` : a.graph_id, selected: a.assistant_id === store.selectedAssistant,
  })));
  const create = async (ev) => {
    ev.preventDefault();
    const meta = parseJson(metaInput.value, {});
    if (!meta.ok || typeof meta.value !== "object" || Array.isArray(meta.value)) {
      toast("Metadata must be a JSON object", "error");
      metaInput.focus();
      return;
    }
    const a = store.assistant(assistantSelect.value);
    try {
      const t = await api.createThread({ metadata: { ...(a ? { graph_id: a.graph_id, assistant_id: a.assistant_id } : {}), ...meta.value } });
      if (a) store.selectedAssistant = a.assistant_id;
      await refreshThreads();
      location.hash = `#/threads/${encodeURIComponent(t.thread_id)}`;
    } catch (err) {
      toast(`Could not create thread: ${err.message}`, "error");
    }
  };
  const render = () => {
    fillAssistants();
    if (!store.threads.length) {
      mount(table, h("p", { class: "empty", text: "No threads match. Create one above." }));
      return;
    }
    mount(table, h("table", { class: "data-table", "aria-label": "Threads" },
      h("thead", {}, h("tr", {}, ["Thread", "Status", "Graph", "Metadata", "Updated", ""].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, store.threads.map((t) => {
        const meta = Object.entries(t.metadata || {}).filter(([k]) => k !== "graph_id" && k !== "assistant_id");
        return h("tr", { dataset: { threadId: t.thread_id } },
          h("td", {}, h("a", { href: `#/threads/${encodeURIComponent(t.thread_id)}`, class: "mono", text: shortId(t.thread_id), title: t.thread_id })),
          h("td", {}, badge(t.status)),
          h("td", {}, t.metadata && t.metadata.graph_id ? h("code", { text: t.metadata.graph_id }) : h("span", { class: "muted", text: "—" })),
          h("td", {}, meta.length ? h("div", { class: "chips" }, meta.map(([k, v]) => h("span", { class: "chip", text: `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}` }))) : h("span", { class: "muted", text: "—" })),
          h("td", { class: "muted small", text: relTime(t.updated_at), title: t.updated_at }),
          h("td", { class: "actions" }, confirmButton("Delete", "Confirm delete", () => deleteThread(t.thread_id), { hideLabel: false })));
      }))));
  };
  mount(main, h("div", { class: "page" },
    h("header", { class: "page-head" }, h("div", {}, h("h1", { text: "Threads" }), h("p", { class: "muted", text: "Every conversation or job is a thread with its own state and checkpoint history." })),
      button("Refresh", { icon: "refresh", onClick: () => refreshThreads() })),
    h("form", { class: "card inline-form", on: { submit: create }, "aria-label": "Create a thread" },
      h("div", { class: "field" }, h("label", { for: "new-thread-assistant", text: "Assistant" }), assistantSelect),
      h("div", { class: "field grow" }, h("label", { for: "new-thread-metadata", text: "Metadata (JSON, optional)" }), metaInput),
      h("div", { class: "field" }, h("label", { for: "threads-page-status", text: "Filter" }), statusSelect),
      h("button", { type: "submit", class: "btn btn-primary" }, icon("plus"), h("span", { text: "Create thread" }))),
    table));
  render();
  return { refresh: render };
}

// ---------------------------------------------------------------- router

let current = null;

async function route() {
  const r = currentRoute();
  const main = document.getElementById("main");
  if (current && current.destroy) current.destroy();
  current = null;
  setSidebar(false);
  renderAssistantList();
  renderThreadList();
  if (r.name === "assistants" && r.id) {
    store.selectedAssistant = r.id;
    current = assistantView(main, r.id);
    document.title = "Assistant · skeino Studio";
  } else if (r.name === "threads" && r.id) {
    current = threadView(main, r.id);
    document.title = `Thread ${shortId(r.id)} · skeino Studio`;
  } else if (r.name === "threads") {
    current = threadsPage(main);
    document.title = "Threads · skeino Studio";
  } else {
    current = homeView(main);
    document.title = "skeino Studio";
  }
}

async function init() {
  initTheme();
  const toggle = document.getElementById("menu-toggle");
  toggle.addEventListener("click", () => setSidebar(!document.getElementById("sidebar").classList.contains("open")));
  document.getElementById("scrim").addEventListener("click", () => setSidebar(false));
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && document.getElementById("sidebar").classList.contains("open")) {
      setSidebar(false);
      toggle.focus();
    }
  });
  document.getElementById("new-thread").addEventListener("click", () => newThread());
  document.getElementById("refresh-threads").addEventListener("click", () => refreshThreads());
  const filter = document.getElementById("thread-status-filter");
  filter.addEventListener("change", () => {
    store.statusFilter = filter.value;
    refreshThreads();
  });
  document.addEventListener("studio:threads", () => current && current.refresh && current.refresh());
  window.addEventListener("hashchange", route);
  api.info().then((info) => {
    store.info = info;
    const el = document.getElementById("server-info");
    const version = info && (info.version || (info.server && info.server.version));
    el.textContent = version ? `connected · v${version}` : "connected";
    el.classList.add("ok");
  }).catch(() => {
    const el = document.getElementById("server-info");
    el.textContent = "server unreachable";
    el.classList.add("bad");
  });
  await Promise.all([refreshAssistants(), refreshThreads()]);
  await route();
  document.body.classList.add("ready");
}

init();
