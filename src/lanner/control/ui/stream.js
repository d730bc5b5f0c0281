// The live stream: one WebSocket to /api/v1/stream, reopened with backoff.
//
// It reports its state ("connecting", "live", "offline") and every message;
// what to do about flows missed while it was down is the flow list's job
// (`onHello` runs on every (re)connection, after the server's hello).

import { request, streamUrl } from "./api.js";

const FIRST_RETRY_MS = 500;
const LAST_RETRY_MS = 30000;

export class LiveStream {
  constructor({ onHello, onFlow, onConnection, onState }) {
    this.handlers = { onHello, onFlow, onConnection, onState };
    this.socket = null;
    this.timer = null;
    this.failures = 0;
    this.filter = "";
    this.attempt = 0; // a newer connect() or stop() abandons an attempt still awaiting its probe
  }

  /** (Re)subscribe with a filter; closes any earlier socket. */
  connect(filter) {
    this.filter = filter;
    this.failures = 0;
    this.open();
  }

  stop() {
    this.attempt += 1;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000);
  }

  async open() {
    this.stop();
    const attempt = this.attempt;
    this.handlers.onState("connecting");
    if (this.failures > 0) {
      // A refused handshake looks like any other failure to a browser: ask the
      // API, which answers 401 (and so prompts for a token) when that was it.
      try {
        await request("flows", { params: { limit: 1 } });
      } catch {
        if (attempt === this.attempt) this.retry(null);
        return;
      }
      if (attempt !== this.attempt) return;
    }
    const socket = new WebSocket(streamUrl(this.filter));
    this.socket = socket;
    socket.onmessage = (event) => {
      if (socket === this.socket) this.dispatch(JSON.parse(event.data));
    };
    socket.onclose = (event) => {
      if (socket === this.socket) this.retry(event);
    };
  }

  dispatch(message) {
    if (message.type === "hello") {
      this.failures = 0;
      this.handlers.onState("live");
      this.handlers.onHello();
    } else if (message.type === "flow") {
      this.handlers.onFlow(message.flow);
    } else if (message.type === "connection" && this.handlers.onConnection) {
      this.handlers.onConnection(message);
    }
  }

  retry(closeEvent) {
    this.socket = null;
    const backoff = Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** this.failures);
    const delay = backoff * (0.75 + Math.random() * 0.5); // jitter: many tabs do not reconnect in step
    this.failures += 1;
    const why = closeEvent && closeEvent.code === 1008 ? "too slow, dropped by lanner" : "disconnected";
    this.handlers.onState("offline", `${why}; retrying in ${Math.ceil(delay / 1000)} s`);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
