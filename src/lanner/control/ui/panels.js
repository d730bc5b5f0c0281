// The Connections, Upstreams and Stats tabs: polled views of /api/v1.
//
// A panel polls only while its tab is shown; rows are updated in place
// (syncRows) so that a refresh does not swallow a click on a row's button.

import { request } from "./api.js";
import { el, fill, fmtBytes, fmtMs, fmtSeconds, fmtValue, syncRows, table } from "./dom.js";

/** Shared polling: refresh() now and every `period` ms while shown. */
class PolledPanel {
  constructor(root, period) {
    this.root = root;
    this.period = period;
    this.timer = null;
    this.shown = false;
    this.failing = false; // the message shown is the last refresh's error
    this.message = root.querySelector(".panel-message");
  }

  show() {
    this.shown = true;
    this.tick();
  }

  hide() {
    this.shown = false;
    clearTimeout(this.timer);
  }

  async tick() {
    clearTimeout(this.timer);
    try {
      await this.refresh();
      if (this.failing) this.say(""); // what an action said stays until the next action
      this.failing = false;
    } catch (error) {
      this.failing = true;
      this.say(error.message, "error");
    }
    if (this.shown && this.period) this.timer = setTimeout(() => this.tick(), this.period);
  }

  say(text, kind = "") {
    this.message.textContent = text;
    this.message.className = `panel-message ${kind}`;
  }
}

/** Lists and objects with one list inside are both accepted: `[...]` or `{"connections": [...]}`. */
function listOf(answer, name) {
  return Array.isArray(answer) ? answer : answer[name] || [];
}

function actionButton(label, action) {
  return (td) => {
    let button = td.querySelector("button");
    if (!button) {
      button = el("button", { type: "button", class: "small" });
      td.replaceChildren(button);
    }
    button.textContent = label;
    button.onclick = action;
  };
}

export class ConnectionsPanel extends PolledPanel {
  constructor(root) {
    super(root, 2000);
    this.listeners = root.querySelector("#listeners");
    this.connections = root.querySelector("#connections");
    this.count = root.querySelector("#connection-count");
  }

  async refresh() {
    const [connections, listeners] = await Promise.all([request("connections"), request("listeners")]);
    syncRows(this.listeners, listOf(listeners, "listeners"), (item) => item.name, (item) => [
      item.name,
      item.type,
      (item.addresses || [item.bind]).join(" "),
      item.analyze || "",
      item.open,
      item.refused,
    ]);
    const open = listOf(connections, "connections");
    this.count.textContent = `${open.length} open`;
    syncRows(this.connections, open, (item) => item.uid, (item) => [
      item.uid,
      item.listener,
      item.client,
      item.protocol,
      item.user || "",
      item.dest || "",
      item.sni || "",
      fmtBytes(item.up),
      fmtBytes(item.down),
      item.requests,
      fmtSeconds(item.age),
      fmtSeconds(item.idle),
      item.in_handshake ? "yes" : "",
      actionButton("Close", () => this.close(item.uid)),
    ]);
  }

  async close(uid) {
    try {
      await request(`connections/${encodeURIComponent(uid)}`, { method: "DELETE" });
      this.say(`Closed ${uid}.`);
    } catch (error) {
      this.say(error.status === 404 ? `${uid} was no longer open.` : error.message, "error");
    }
    this.tick();
  }
}

// Backends are listed with `backend` (spec: `address`) and a `state` of up, down, ejected or
// draining (spec: `healthy` and `drained`); either spelling is shown.
const POOL_KEYS = ["pool", "address", "backend", "state", "healthy", "drained", "in_flight", "active"];
const POOL_SHOWN = [...POOL_KEYS, "requests", "failures", "latency_ms"];
const PROVIDER_SHOWN = ["name", "protocol", "state", "breaker", "breaker_reason", "open_tunnels", "failures"];

/** What an item has beyond the columns shown, as "key=value" text. */
function extras(item, shown) {
  return Object.entries(item)
    .filter(([name]) => !shown.includes(name))
    .map(([name, value]) => `${name}=${fmtValue(value)}`)
    .join(" ");
}

function backendOf(item) {
  const drained = item.drained ?? item.state === "draining";
  return {
    address: item.address ?? item.backend,
    state: item.state ?? (item.healthy === false ? "down" : "up"),
    drained,
    inFlight: item.in_flight ?? item.active,
  };
}

export class UpstreamsPanel extends PolledPanel {
  constructor(root) {
    super(root, 2000);
    this.pools = root.querySelector("#pools");
    this.providers = root.querySelector("#providers");
  }

  async refresh() {
    const answer = await request("upstreams");
    const pools = answer.pools || [];
    syncRows(this.pools, pools, (item) => `${item.pool} ${backendOf(item).address}`, (item) => {
      const backend = backendOf(item);
      return [
        item.pool,
        backend.address,
        backend.state,
        backend.inFlight,
        item.requests,
        item.failures,
        item.latency_ms === null || item.latency_ms === undefined ? "" : fmtMs(item.latency_ms),
        extras(item, POOL_SHOWN),
        actionButton(backend.drained ? "Undrain" : "Drain", () => this.drain(item.pool, backend.address, !backend.drained)),
      ];
    });
    syncRows(this.providers, answer.providers || [], (item) => item.name, (item) => [
      item.name,
      item.protocol,
      fmtValue(item.breaker ?? item.state),
      item.breaker_reason || "",
      item.open_tunnels,
      item.failures,
      extras(item, PROVIDER_SHOWN),
    ]);
    this.root.querySelector("#pools-empty").hidden = pools.length > 0;
    this.root.querySelector("#providers-empty").hidden = (answer.providers || []).length > 0;
  }

  async drain(pool, address, drain) {
    const path = `upstreams/${encodeURIComponent(pool)}/${encodeURIComponent(address)}/`;
    try {
      await request(path + (drain ? "drain" : "undrain"), { method: "POST" });
      this.say(`${pool} ${address}: ${drain ? "drained" : "back in rotation"}.`);
    } catch (error) {
      this.say(error.message, "error");
    }
    this.tick();
  }
}

/** Counts and latency for the Flows tab's filter; refreshed when shown or asked. */
export class StatsPanel extends PolledPanel {
  constructor(root, currentFilter) {
    super(root, 0);
    this.currentFilter = currentFilter;
    this.content = root.querySelector("#stats");
    root.querySelector("#stats-refresh").addEventListener("click", () => this.tick());
  }

  async refresh() {
    const filter = this.currentFilter();
    this.root.querySelector("#stats-filter").textContent = filter || "(all flows)";
    const stats = await request("stats", { params: { filter } });
    const classes = Object.entries(stats.status_classes || {});
    const most = Math.max(1, ...classes.map(([, count]) => count));
    fill(
      this.content,
      el("p", { class: "totals" }, el("strong", { text: stats.flows }), " flows · ",
        el("strong", { text: stats.connections }), " connections"),
      el("h3", { text: "Status classes" }),
      table(["Class", "Flows", ""], classes.map(([name, count]) => [name, count, meter(count / most)]), "grid classes"),
      el("h3", { text: "Latency by host and path" }),
      table(["Host", "Path", "Count", "p50", "p95", "p99"], (stats.latency || []).map((row) => [
        row.host, row.path, row.count, fmtMs(row.p50), fmtMs(row.p95), fmtMs(row.p99),
      ]), "grid latency"),
      (stats.groups || []).length ? [
        el("h3", { text: "Commands and statements" }),
        table(["Group", "Calls", "Errors", "Rows", "p50", "p95", "p99"], stats.groups.map((row) => [
          el("code", { text: row.text || row.group, title: row.group }),
          row.calls, row.errors, row.rows, fmtMs(row.p50), fmtMs(row.p95), fmtMs(row.p99),
        ]), "grid groups"),
      ] : null,
    );
  }
}

function meter(fraction) {
  const bar = el("span", { class: "bar" });
  bar.style.width = `${Math.max(fraction * 100, 0.5)}%`;
  return el("div", { class: "meter" }, bar);
}
