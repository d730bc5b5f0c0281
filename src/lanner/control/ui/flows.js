// The flow list: the newest page, older pages on demand, live flows on top.
//
// The page never holds the whole store: pages of PAGE_SIZE come from the API,
// and the table keeps at most `maxRows` rows. Live flows push the oldest rows
// out at the bottom (paging older then continues below the last row kept);
// paging older pushes the newest rows out at the top, and the list is then
// "detached" from the live edge until the user jumps back to the newest.

import { request } from "./api.js";
import { el, fmtBytes, fmtClock, fmtDate, fmtMs } from "./dom.js";

const PAGE_SIZE = 100;
const CATCH_UP_LIMIT = 1000;

/** The user's filter narrowed by one more term; the user's part stays one group. */
function narrowed(filter, term) {
  return filter.trim() ? `(${filter}) ${term}` : term;
}

export class FlowList {
  constructor({ tbody, scroller, footer, maxRows, onSelect, onChange, onError }) {
    this.tbody = tbody;
    this.scroller = scroller;
    this.maxRows = maxRows;
    this.onSelect = onSelect;
    this.onChange = onChange;
    this.onError = onError;
    this.filter = "";
    this.rows = new Map(); // flow id -> <tr>, for every row in the table
    this.generation = 0; // bumped when the list is replaced: answers for the old list are dropped
    this.loading = 0; // the latest load() request; an earlier one still in flight is ignored
    this.older = null; // how to fetch the next older page: {cursor} or {beforeId}; null: none
    this.loadingOlder = false;
    this.newestId = 0; // the newest flow shown (or known, when the list is empty)
    this.incoming = []; // live flows not yet in the table, in arrival order
    this.flushPending = false;
    this.catchingUp = false;
    this.paused = false;
    this.detached = false;
    this.newer = 0; // live flows seen while detached
    this.selectedId = null;
    tbody.addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-flow-id]");
      if (row) this.select(Number(row.dataset.flowId));
    });
    // Infinite scroll: the footer (with the "Older" button) coming into view loads the next page.
    const reached = (entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadOlder().catch(this.onError);
    };
    new IntersectionObserver(reached, { root: scroller, rootMargin: "200px" }).observe(footer);
  }

  /** Show the newest page for `filter`; rejects, leaving the list as it was, if the API refuses it. */
  async load(filter) {
    const loading = ++this.loading;
    const page = await request("flows", { params: { filter, limit: PAGE_SIZE } });
    if (loading !== this.loading) return false;
    this.generation += 1;
    this.filter = filter;
    this.rows.clear();
    this.tbody.replaceChildren();
    this.incoming = [];
    this.detached = false;
    this.newer = 0;
    this.loadingOlder = false;
    this.catchingUp = false;
    this.newestId = page.flows.length ? page.flows[0].id : this.newestId;
    this.appendPage(page, (cursor) => ({ cursor }));
    this.scroller.scrollTop = 0;
    this.changed();
    return true;
  }

  /** After the stream (re)connects: fetch what was recorded while it was not listening. */
  async catchUp() {
    if (this.detached) return;
    const generation = this.generation;
    this.catchingUp = true;
    try {
      const page = await request("flows", {
        params: { filter: narrowed(this.filter, `id:>${this.newestId}`), limit: CATCH_UP_LIMIT },
      });
      if (generation !== this.generation) return;
      if (page.next_cursor !== null) {
        await this.load(this.filter); // missed too many: start again from the newest
        return;
      }
      this.incoming.push(...page.flows);
    } finally {
      if (generation === this.generation) {
        this.catchingUp = false;
        this.scheduleFlush();
      }
    }
  }

  /** A flow from the stream. */
  add(flow) {
    if (this.detached) {
      this.newer += 1;
    } else {
      this.incoming.push(flow);
      // Only the newest maxRows can ever be shown: bound what a paused or hidden page holds.
      if (this.incoming.length > this.maxRows * 2) this.incoming.splice(0, this.incoming.length - this.maxRows);
      this.scheduleFlush();
    }
    this.changed();
  }

  /** Back to the live edge after paging far enough back that the newest rows were dropped. */
  async jumpToNewest() {
    if (await this.load(this.filter)) await this.catchUp();
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused && this.detached) this.jumpToNewest().catch(this.onError);
    else this.scheduleFlush();
    this.changed();
  }

  scheduleFlush() {
    if (this.flushPending || this.paused || this.catchingUp) return;
    this.flushPending = true;
    requestAnimationFrame(() => {
      this.flushPending = false;
      if (!this.paused && !this.catchingUp) this.flush();
    });
  }

  /** Put the held live flows on top, newest first, in one DOM insertion. */
  flush() {
    const fresh = this.incoming.filter((flow) => flow.id > this.newestId && !this.rows.has(flow.id));
    this.incoming = [];
    if (!fresh.length) return;
    fresh.sort((left, right) => right.id - left.id);
    const fragment = document.createDocumentFragment();
    for (const flow of fresh.slice(0, this.maxRows)) fragment.append(this.rowFor(flow));
    this.tbody.prepend(fragment);
    this.newestId = fresh[0].id;
    this.trimBottom();
    this.changed();
  }

  async loadOlder() {
    if (!this.older || this.loadingOlder) return;
    const generation = this.generation;
    const older = this.older;
    this.loadingOlder = true;
    this.changed();
    try {
      const params = older.cursor
        ? { filter: this.filter, cursor: older.cursor, limit: PAGE_SIZE }
        : { filter: narrowed(this.filter, `id:<${older.beforeId}`), limit: PAGE_SIZE };
      const page = await request("flows", { params });
      // Live rows may have pushed the bottom out meanwhile: this page would then leave a gap.
      if (generation !== this.generation || this.older !== older) return;
      // A cursor belongs to the query that produced it: pages fetched by id continue by id.
      this.appendPage(page, older.cursor ? (cursor) => ({ cursor }) : null);
      this.trimTop();
    } finally {
      if (generation === this.generation) {
        this.loadingOlder = false;
        this.changed();
      }
    }
  }

  appendPage(page, continuation) {
    const fragment = document.createDocumentFragment();
    for (const flow of page.flows) {
      if (!this.rows.has(flow.id)) fragment.append(this.rowFor(flow));
    }
    this.tbody.append(fragment);
    const last = this.tbody.lastElementChild;
    if (page.next_cursor === null || page.next_cursor === undefined || !last) this.older = null;
    else if (continuation) this.older = continuation(page.next_cursor);
    else this.older = { beforeId: Number(last.dataset.flowId) };
  }

  trimBottom() {
    if (this.rows.size <= this.maxRows) return;
    while (this.rows.size > this.maxRows) this.removeRow(this.tbody.lastElementChild);
    this.older = { beforeId: Number(this.tbody.lastElementChild.dataset.flowId) };
  }

  trimTop() {
    if (this.rows.size <= this.maxRows) return;
    while (this.rows.size > this.maxRows) this.removeRow(this.tbody.firstElementChild);
    this.detached = true;
    this.incoming = [];
  }

  removeRow(row) {
    this.rows.delete(Number(row.dataset.flowId));
    row.remove();
  }

  rowFor(flow) {
    const row = flowRow(flow);
    if (flow.id === this.selectedId) row.classList.add("selected");
    this.rows.set(flow.id, row);
    return row;
  }

  select(id) {
    this.rows.get(this.selectedId)?.classList.remove("selected");
    this.selectedId = id;
    this.rows.get(id)?.classList.add("selected");
    if (id !== null) this.onSelect(id);
  }

  /** Move the selection to the next (+1, older) or previous (-1, newer) row. */
  move(step) {
    const current = this.rows.get(this.selectedId);
    const next = current
      ? step > 0
        ? current.nextElementSibling
        : current.previousElementSibling
      : this.tbody.firstElementChild;
    if (!next) return;
    this.select(Number(next.dataset.flowId));
    next.scrollIntoView({ block: "nearest" });
  }

  changed() {
    this.onChange({
      rows: this.rows.size,
      paused: this.paused,
      held: this.incoming.length,
      detached: this.detached,
      newer: this.newer,
      hasOlder: this.older !== null,
      loadingOlder: this.loadingOlder,
    });
  }
}

function flowRow(flow) {
  const target = targetOf(flow);
  return el(
    "tr",
    { dataset: { flowId: flow.id, proto: flow.proto }, class: outcomeClass(flow), tabindex: -1 },
    el("td", { class: "c-time", text: fmtClock(flow.started), title: fmtDate(flow.started) }),
    el("td", { class: "c-proto", text: flow.proto }),
    el("td", { class: "c-method", text: flow.method }),
    el("td", { class: "c-target", text: target, title: target }),
    el("td", { class: "c-status", text: outcomeOf(flow), title: flow.error || flow.reason || "" }),
    el("td", { class: "c-duration num", text: fmtMs(flow.duration_ms) }),
    el("td", { class: "c-size num", text: fmtBytes(sizeOf(flow)) }),
  );
}

/** The URL, or for a database the command line / SQL text. */
export function targetOf(flow) {
  if (flow.proto === "redis" || flow.proto === "postgres") return flow.command || flow.url;
  return flow.url;
}

/** The status column: HTTP status, Redis reply, SQL tag or SQLSTATE, WebSocket direction. */
export function outcomeOf(flow) {
  switch (flow.proto) {
    case "websocket":
      return flow.reason === "send" ? "→ send" : "← receive";
    case "redis":
      return flow.error ? `ERR ${flow.error}` : flow.reason;
    case "postgres":
      if (flow.error || flow.sqlstate) return flow.error || flow.sqlstate;
      if (flow.rows === null || flow.rows === undefined) return flow.reason;
      return `${flow.reason} (${flow.rows} row${flow.rows === 1 ? "" : "s"})`;
    default:
      if (flow.status !== null && flow.status !== undefined) return String(flow.status);
      return flow.error ? "failed" : "…";
  }
}

function outcomeClass(flow) {
  if (flow.error) return "bad";
  if (flow.status >= 500) return "bad";
  if (flow.status >= 400) return "warn";
  if (flow.status >= 300) return "redirect";
  return "";
}

function sizeOf(flow) {
  if (flow.proto === "websocket") return flow.reason === "send" ? flow.request_size : flow.response_size;
  return flow.response_size;
}
