// The lanner web UI: wires the flow list, live stream, detail pane and tabs.
//
// Query parameters: `filter` (kept in step with the filter box, so a reload
// or a shared link shows the same list) and `max_rows` (rows kept in the
// table, default 2,000). The tab is in the fragment: #flows, #connections…

import { request, downloadLink } from "./api.js";
import { DetailPane } from "./detail.js";
import { FlowList } from "./flows.js";
import { ConnectionsPanel, StatsPanel, UpstreamsPanel } from "./panels.js";
import { LiveStream } from "./stream.js";

const DEFAULT_MAX_ROWS = 2000;
const START_RETRY_MS = 3000;

const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);
const maxRows = Math.min(Math.max(Number(query.get("max_rows")) || DEFAULT_MAX_ROWS, 50), 20000);

const view = { stream: "connecting", streamDetail: "", list: null, count: null };

const detail = new DetailPane($("detail"));
const list = new FlowList({
  tbody: $("flows"),
  scroller: $("flows-scroll"),
  footer: $("flows-footer"),
  maxRows,
  onSelect: (id) => detail.show(id),
  onChange: (state) => {
    view.list = state;
    render();
  },
  onError: showError,
});
const stream = new LiveStream({
  onHello: () => {
    list.catchUp().catch(showError);
    refreshCount();
  },
  onFlow: (flow) => {
    if (view.count !== null) view.count += 1;
    list.add(flow);
  },
  onState: (state, why = "") => {
    view.stream = state;
    view.streamDetail = why;
    render();
  },
});
const panels = {
  connections: new ConnectionsPanel($("panel-connections")),
  upstreams: new UpstreamsPanel($("panel-upstreams")),
  stats: new StatsPanel($("panel-stats"), () => list.filter),
};

/** Load the newest flows for `text` and follow them live; a refused filter leaves everything as it was. */
async function applyFilter(text) {
  let replaced;
  try {
    replaced = await list.load(text);
  } catch (error) {
    if (error.status === 400) {
      $("filter-error").textContent = error.message;
      $("filter-error").hidden = false;
      $("filter").setAttribute("aria-invalid", "true");
    } else {
      showError(error);
      // lanner not up yet, or restarting; a dismissed token prompt waits for a reload instead.
      if (error.status !== 401) setTimeout(() => applyFilter(text), START_RETRY_MS);
    }
    return;
  }
  if (!replaced) return; // a newer filter was applied meanwhile
  $("filter-error").hidden = true;
  $("filter").removeAttribute("aria-invalid");
  showError(null);
  stream.connect(text);
  downloadLink($("export-har"), "flows.har", { filter: text });
  if (text) query.set("filter", text);
  else query.delete("filter");
  history.replaceState(null, "", `${location.pathname}${query.size ? `?${query}` : ""}${location.hash}`);
  view.count = null;
  refreshCount();
  if (panels.stats.shown) panels.stats.tick();
}

async function refreshCount() {
  const filter = list.filter;
  try {
    const { count } = await request("flows/count", { params: { filter } });
    if (filter === list.filter) view.count = count;
  } catch {
    view.count = null; // the list still works without its total
  }
  render();
}

function showError(error) {
  $("banner").textContent = error ? error.message : "";
  $("banner").hidden = !error;
}

function render() {
  const state = view.list;
  const status = $("live-status");
  let label = { connecting: "connecting…", offline: "offline", live: "live" }[view.stream];
  let mode = view.stream;
  if (state && view.stream === "live" && state.paused) {
    mode = "paused";
    label = state.held ? `paused · ${state.held} new` : "paused";
  }
  status.dataset.state = mode;
  status.textContent = label;
  status.title = view.streamDetail;
  if (!state) return;
  $("pause").textContent = state.paused ? "Resume" : "Pause";
  $("pause").setAttribute("aria-pressed", String(state.paused));
  $("newest").hidden = !state.detached;
  $("newest").textContent = state.newer ? `Newest (${state.newer} more)` : "Newest";
  const older = $("older");
  older.disabled = !state.hasOlder || state.loadingOlder;
  older.textContent = state.loadingOlder ? "Loading…" : state.hasOlder ? "Older" : "No older flows";
  $("row-count").textContent = `${state.rows} shown${state.rows >= maxRows ? ` (at most ${maxRows})` : ""}`;
  $("flow-count").textContent = view.count === null ? "" : `${view.count.toLocaleString()} flows`;
}

function showTab(name) {
  if (!(name in panels) && name !== "flows") name = "flows";
  for (const button of document.querySelectorAll("[data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  for (const [key, panel] of Object.entries(panels)) {
    if (key === name) panel.show();
    else panel.hide();
  }
}

function onKey(event) {
  if (event.target.closest("input, textarea, select, dialog") || $("panel-flows").hidden) return;
  const keys = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1 };
  if (event.key in keys) {
    list.move(keys[event.key]);
    event.preventDefault();
  } else if (event.key === "Escape") {
    detail.close();
  } else if (event.key === "/") {
    $("filter").focus();
    event.preventDefault();
  }
}

$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilter($("filter").value.trim());
});
$("pause").addEventListener("click", () => list.setPaused(!list.paused));
$("newest").addEventListener("click", () => list.jumpToNewest().catch(showError));
$("older").addEventListener("click", () => list.loadOlder().catch(showError));
for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => {
    location.hash = button.dataset.tab;
  });
}
window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
document.addEventListener("keydown", onKey);

$("filter").value = query.get("filter") || "";
showTab(location.hash.slice(1) || "flows");
applyFilter($("filter").value.trim());
