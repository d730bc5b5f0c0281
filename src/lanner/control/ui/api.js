// The admin API client: URLs, the bearer token, errors.
//
// URLs are resolved against this file's own location (…/ui/api.js → …/api/v1/),
// so the UI works wherever the admin listener is mounted. The token is asked
// for only when a call answers 401, and kept in localStorage.

const API_ROOT = new URL("../api/v1/", import.meta.url);
const TOKEN_KEY = "lanner.admin.token";

export class ApiError extends Error {
  constructor(status, code, message, requestId = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

/** An API URL; empty and missing parameters are left out. */
export function apiUrl(path, params = {}) {
  const url = new URL(path, API_ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/** The stream's ws:// URL; browsers cannot set headers on a WebSocket, so the token rides in the query. */
export function streamUrl(filter) {
  const url = apiUrl("stream", { filter, token: token() });
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

/**
 * Call the API; resolves to the parsed JSON (or the Response when `raw`).
 * Rejects with an ApiError carrying the server's error message.
 */
export async function request(path, { params = {}, method = "GET", raw = false } = {}) {
  for (let refused = false; ; refused = true) {
    const headers = { Accept: "application/json" };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    let response;
    try {
      response = await fetch(apiUrl(path, params), { method, headers });
    } catch (error) {
      throw new ApiError(0, "unreachable", `lanner is unreachable (${error.message})`);
    }
    if (response.status === 401) {
      await askForToken(refused || Boolean(token()));
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return raw ? response : response.json();
  }
}

async function errorOf(response) {
  const requestId = response.headers.get("X-Request-Id");
  try {
    const { error } = await response.json();
    return new ApiError(response.status, error.code, error.message, error.request_id || requestId);
  } catch {
    return new ApiError(response.status, "http", `${response.status} ${response.statusText}`, requestId);
  }
}

// One prompt answers every call that got a 401 while it was open.
let pendingPrompt = null;

function askForToken(refused) {
  if (!pendingPrompt) {
    pendingPrompt = promptForToken(refused).finally(() => {
      pendingPrompt = null;
    });
  }
  return pendingPrompt;
}

function promptForToken(refused) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  document.getElementById("token-message").textContent = refused
    ? "That token was refused. Enter the admin token:"
    : "This lanner needs an admin token:";
  input.value = "";
  return new Promise((resolve, reject) => {
    const submitted = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      localStorage.setItem(TOKEN_KEY, value);
      done();
      resolve();
    };
    const cancelled = () => {
      done();
      reject(new ApiError(401, "unauthorized", "an admin token is needed"));
    };
    const done = () => {
      form.removeEventListener("submit", submitted);
      dialog.removeEventListener("cancel", cancelled);
      document.getElementById("token-cancel").removeEventListener("click", cancelled);
      if (dialog.open) dialog.close();
    };
    form.addEventListener("submit", submitted);
    dialog.addEventListener("cancel", cancelled);
    document.getElementById("token-cancel").addEventListener("click", cancelled);
    dialog.showModal();
    input.focus();
  });
}

/**
 * Point a link at an API download. Without a token the browser follows it;
 * with one, a click fetches it with the Authorization header and saves the blob.
 */
export function downloadLink(link, path, params = {}) {
  link.href = apiUrl(path, params).href;
  link.onclick = async (event) => {
    if (!token()) return;
    event.preventDefault();
    try {
      const response = await request(path, { params, raw: true });
      const blob = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = blob;
      if (link.hasAttribute("download")) save.download = link.getAttribute("download");
      else save.target = "_blank";
      save.click();
      setTimeout(() => URL.revokeObjectURL(blob), 10000);
    } catch (error) {
      link.title = error.message;
    }
  };
  return link;
}
