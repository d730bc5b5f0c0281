// The detail pane: one flow in full, fetched from /api/v1/flows/{id}.
//
// Sections depend on the protocol: HTTP shows headers and bodies (and the
// WebSocket messages of an upgrade), Redis the command and reply, PostgreSQL
// the SQL with its parameters, columns and result. Bodies arrive decoded as
// text; binary ones are offered through the raw body endpoint.

import { downloadLink, request } from "./api.js";
import { el, fill, fmtBytes, fmtClock, fmtDate, fmtMs, fmtValue, pairs, table } from "./dom.js";
import { outcomeOf, targetOf } from "./flows.js";

const SHOWN_TEXT = 256 * 1024; // characters of a body put on the page; the rest stays behind the raw link

export class DetailPane {
  constructor(root) {
    this.root = root;
    this.title = root.querySelector("#detail-title");
    this.content = root.querySelector("#detail-body");
    this.backButton = root.querySelector("#detail-back");
    this.current = null;
    this.trail = []; // flows opened before this one from inside the pane (an upgrade, then its message)
    root.querySelector("#detail-close").addEventListener("click", () => this.close());
    this.backButton.addEventListener("click", () => this.show(this.trail.pop(), { keepTrail: true }));
  }

  async show(id, { keepTrail = false } = {}) {
    if (!keepTrail) this.trail = [];
    this.current = id;
    this.root.hidden = false;
    this.backButton.hidden = this.trail.length === 0;
    this.title.textContent = `Flow ${id}`;
    fill(this.content, el("p", { class: "muted", text: "Loading…" }));
    try {
      const flow = await request(`flows/${id}`);
      if (this.current === id) fill(this.content, this.render(flow));
    } catch (error) {
      if (this.current === id) fill(this.content, el("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  /** Open another flow from this one (a WebSocket message of an upgrade); Back returns. */
  open(id) {
    this.trail.push(this.current);
    this.show(id, { keepTrail: true });
  }

  close() {
    this.current = null;
    this.root.hidden = true;
  }

  render(flow) {
    this.title.textContent = `Flow ${flow.id} · ${flow.proto} ${flow.method}`;
    const notes = { ...(flow.notes || {}) };
    const sections = [section("Summary", "summary", summary(flow))];
    if (flow.proto !== "websocket") sections.push(section("Timings", "timings", timings(flow)));
    if (flow.proto === "redis") sections.push(...redis(flow));
    else if (flow.proto === "postgres") sections.push(...postgres(flow, notes));
    else if (flow.proto === "websocket") sections.push(...websocketMessage(flow));
    else sections.push(...http(flow, (id) => this.open(id)));
    if (Object.keys(notes).length) sections.push(section("Notes", "notes", pairs(Object.entries(notes))));
    if (flow.connection) sections.push(section("Connection", "connection", connection(flow.connection)));
    return sections;
  }
}

function section(title, name, ...content) {
  return el("section", { class: "detail-section", dataset: { section: name } }, el("h3", { text: title }), content);
}

/** HTTP exchanges, including upgraded ones (proto "ws"/"wss"): everything but the message protocols. */
function isHttp(flow) {
  return !["redis", "postgres", "websocket"].includes(flow.proto);
}

function summary(flow) {
  const status = outcomeOf(flow);
  const http = isHttp(flow);
  return pairs([
    [flow.proto === "redis" || flow.proto === "postgres" ? "Command" : "URL", el("code", { text: targetOf(flow) })],
    [{ redis: "Reply", postgres: "Result", websocket: "Direction" }[flow.proto] || "Status",
      http ? `${status} ${flow.reason || ""}`.trim() : status],
    ["Error", flow.error ? el("span", { class: "error", text: flow.error }) : null],
    ["Started", `${fmtDate(flow.started)} (${fmtClock(flow.started)} local)`],
    ["Duration", fmtMs(flow.duration_ms)],
    ["Request", `${fmtBytes(flow.request_size)}`],
    ["Response", `${fmtBytes(flow.response_size)}${flow.content_type ? `, ${flow.content_type}` : ""}`],
    ["HTTP version", http ? flow.http_version : null],
    ["Interim", flow.interim && flow.interim.length ? flow.interim.join(", ") : null],
    ["Category", flow.category],
    ["Rows", flow.rows],
    ["SQLSTATE", flow.sqlstate],
    ["Keys", flow.keys && flow.keys.length ? flow.keys.join(" ") : null],
    ["Listener", flow.listener],
    ["Client", flow.client],
    ["User", flow.user],
    ["Connection", flow.conn_uid],
  ]);
}

/** The client connection the flow came on (as stored when it ended). */
function connection(conn) {
  const shown = { started: fmtDate, ended: fmtDate, up: fmtBytes, down: fmtBytes };
  return pairs(Object.entries(conn).map(([name, value]) => {
    const format = shown[name];
    return [name, format && typeof value === "number" ? format(value) : fmtValue(value)];
  }));
}

/** Phases of the exchange as offsets from its first byte, with bars to scale. */
function timings(flow) {
  const marks = flow.timings || {};
  const start = flow.started;
  const phases = [
    ["Request", start, marks.request_ended],
    ["Waiting", marks.request_ended, marks.response_started],
    ["Response", marks.response_started, marks.response_ended],
  ].filter(([, from, to]) => typeof from === "number" && typeof to === "number");
  const last = Math.max(start, ...phases.map(([, , to]) => to));
  const span = Math.max(last - start, 1e-6);
  const rows = phases.map(([label, from, to]) => {
    const bar = el("span", { class: "bar" });
    bar.style.marginLeft = `${((from - start) / span) * 100}%`;
    bar.style.width = `${Math.max(((to - from) / span) * 100, 0.5)}%`;
    return [label, fmtMs((to - from) * 1000), el("div", { class: "waterfall" }, bar)];
  });
  rows.push(["Total", fmtMs(flow.duration_ms), ""]);
  return table(["Phase", "Time", ""], rows, "grid timings");
}

function http(flow, openFlow) {
  const request = flow.request || {};
  const response = flow.response || {};
  const parts = [
    section("Request headers", "request-headers", headerTable(request.headers)),
    section("Request body", "request-body", body(flow.id, "request", request.body)),
  ];
  if (request.trailers && request.trailers.length) {
    parts.push(section("Request trailers", "request-trailers", headerTable(request.trailers)));
  }
  parts.push(
    section("Response headers", "response-headers", headerTable(response.headers)),
    section("Response body", "response-body", body(flow.id, "response", response.body)),
  );
  if (response.trailers && response.trailers.length) {
    parts.push(section("Response trailers", "response-trailers", headerTable(response.trailers)));
  }
  if (flow.messages && flow.messages.length) {
    parts.push(section(`WebSocket messages (${flow.messages.length})`, "messages", messages(flow, openFlow)));
  }
  return parts;
}

function headerTable(headers) {
  if (!headers || !headers.length) return el("p", { class: "muted", text: "(none)" });
  return table(["Name", "Value"], headers.map(([name, value]) => [name, value]), "grid headers");
}

function messages(flow, openFlow) {
  const rows = flow.messages.map((message) => {
    const sent = message.reason === "send";
    const row = [
      `+${fmtMs((message.started - flow.started) * 1000)}`,
      sent ? "→ send" : "← receive",
      message.method,
      fmtBytes(sent ? message.request_size : message.response_size),
    ];
    return row;
  });
  const grid = table(["At", "Direction", "Opcode", "Size"], rows, "grid messages clickable");
  [...grid.tBodies[0].rows].forEach((row, index) => {
    row.dataset.flowId = flow.messages[index].id;
    row.addEventListener("click", () => openFlow(flow.messages[index].id));
  });
  return grid;
}

function websocketMessage(flow) {
  const sent = flow.reason === "send";
  const side = sent ? "request" : "response";
  const payload = (flow[side] || {}).body;
  return [section(sent ? "Payload (client → server)" : "Payload (server → client)", "payload", body(flow.id, side, payload))];
}

function redis(flow) {
  const reply = ((flow.response || {}).body || {}).text;
  return [
    section("Command", "command", el("pre", { class: "code", text: flow.command })),
    section("Reply", "reply", reply === null || reply === undefined
      ? body(flow.id, "response", (flow.response || {}).body)
      : el("pre", { class: "code", text: reply })),
  ];
}

/** SQL, its parameters and result columns (from notes, which are then not repeated). */
function postgres(flow, notes) {
  const parts = [section("SQL", "sql", el("pre", { class: "code", text: flow.command }))];
  const params = takeJson(notes, "params");
  if (Array.isArray(params)) {
    const rows = params.map((value, index) => [`$${index + 1}`, value === null ? "NULL" : fmtValue(value)]);
    parts.push(section("Parameters", "params", table(["#", "Value"], rows)));
  }
  const columns = takeJson(notes, "columns");
  if (Array.isArray(columns)) {
    const rows = columns.map((column) => (Array.isArray(column) ? column.map(fmtValue) : [fmtValue(column), ""]));
    parts.push(section("Columns", "columns", table(["Name", "Type OID"], rows)));
  }
  const result = ((flow.response || {}).body || {}).text;
  const facts = pairs([
    ["Tag", flow.reason],
    ["Rows", flow.rows],
    ["SQLSTATE", flow.sqlstate],
    ["Error", flow.error],
    ["Normalized", flow.statement ? el("code", { text: flow.statement }) : null],
    ["Fingerprint", flow.fingerprint],
  ]);
  parts.push(section("Result", "result", facts, result ? el("pre", { class: "code", text: result }) : null));
  return parts;
}

function takeJson(notes, name) {
  if (!(name in notes)) return undefined;
  try {
    const value = JSON.parse(notes[name]);
    delete notes[name];
    return value;
  } catch {
    return undefined; // not JSON: stays in Notes as text
  }
}

/** A body as text (pretty JSON), or a link to its raw bytes. */
function body(flowId, side, data) {
  if (!data || !data.size) return el("p", { class: "muted", text: "(empty)" });
  const facts = [fmtBytes(data.size)];
  if (data.content_type) facts.push(data.content_type);
  if (data.truncated) facts.push(`truncated: ${fmtBytes(data.stored)} stored`);
  const raw = downloadLink(el("a", { class: "raw-link", target: "_blank", rel: "noopener", text: "raw" }),
    `flows/${flowId}/body/${side}`);
  const parts = [el("p", { class: "body-facts" }, facts.join(" · "), " · ", raw)];
  if (data.decode_error) parts.push(el("p", { class: "error", text: `could not decode: ${data.decode_error}` }));
  if (data.text === null || data.text === undefined || data.binary) {
    parts.push(el("p", { class: "muted" }, "Binary body: open it with the ", el("em", { text: "raw" }), " link."));
  } else {
    const text = prettyJson(data.text, data.content_type);
    parts.push(el("pre", { class: "body", dataset: { side } }, text.slice(0, SHOWN_TEXT)));
    if (text.length > SHOWN_TEXT) parts.push(el("p", { class: "muted", text: `Showing the first ${SHOWN_TEXT} characters.` }));
  }
  return el("div", { class: "body-view" }, parts);
}

function prettyJson(text, contentType) {
  if (!contentType || !/json/i.test(contentType) || text.includes("\n")) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
