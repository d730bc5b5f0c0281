// Small DOM and formatting helpers shared by the UI modules.
//
// Everything that reaches the page goes through createElement and text nodes:
// data from the API (URLs, headers, bodies, SQL) is never parsed as HTML.

/**
 * Build an element. `props`: class, text, dataset, title, on<event> handlers,
 * any other attribute; `children`: nodes or strings (inserted as text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A two-column definition list of [label, value] pairs; empty values are left out. */
export function pairs(entries, className = "pairs") {
  const list = el("dl", { class: className });
  for (const [label, value] of entries) {
    if (value === null || value === undefined || value === "") continue;
    list.append(el("dt", { text: label }), el("dd", {}, value));
  }
  return list;
}

/** A table from column titles and rows of cell contents (strings or nodes). */
export function table(columns, rows, className = "grid") {
  const head = el("thead", {}, el("tr", {}, columns.map((title) => el("th", { text: title }))));
  const body = el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((cell) => el("td", {}, cell)))));
  return el("table", { class: className }, head, body);
}

export function fmtBytes(count) {
  if (count === null || count === undefined) return "";
  if (count < 1024) return `${count} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

export function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return fmtMs(seconds * 1000);
}

/** Wall-clock time of day with milliseconds, in the browser's time zone. */
export function fmtClock(epoch) {
  if (!epoch) return "";
  const date = new Date(epoch * 1000);
  const time = date.toLocaleTimeString([], { hour12: false });
  return `${time}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

export function fmtDate(epoch) {
  return epoch ? new Date(epoch * 1000).toISOString() : "";
}

/** Any JSON value as short display text (objects as compact JSON). */
export function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/**
 * Keep a table body in step with a list of items without rebuilding it, so a
 * refresh every few seconds does not steal a click from a button in a row.
 * `render(item)` returns the row's cells: strings, nodes, or functions
 * `(td) => void` that update their cell in place (buttons made once).
 */
export function syncRows(tbody, items, keyOf, render) {
  const existing = new Map([...tbody.rows].map((row) => [row.dataset.key, row]));
  let previous = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let row = existing.get(key);
    existing.delete(key);
    if (!row) row = el("tr", { dataset: { key } });
    const expected = previous ? previous.nextSibling : tbody.firstChild;
    if (row !== expected) tbody.insertBefore(row, expected);
    updateCells(row, render(item));
    previous = row;
  }
  for (const row of existing.values()) row.remove();
}

function updateCells(row, cells) {
  const titles = row.closest("table")?.tHead?.rows[0]?.cells;
  cells.forEach((cell, index) => {
    let td = row.cells[index];
    if (!td) {
      td = row.insertCell();
      td.className = titles?.[index]?.className || ""; // e.g. "num": aligned like its column title
    }
    if (typeof cell === "function") {
      cell(td);
    } else if (cell instanceof Node) {
      if (td.firstChild !== cell) fill(td, cell);
    } else {
      const text = cell === null || cell === undefined ? "" : String(cell);
      if (td.childElementCount || td.textContent !== text) td.textContent = text;
    }
  });
  while (row.cells.length > cells.length) row.deleteCell(-1);
}
