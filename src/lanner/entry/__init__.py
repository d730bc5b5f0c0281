"""Entries: the client-side handshakes that turn a new connection into a destination."""
