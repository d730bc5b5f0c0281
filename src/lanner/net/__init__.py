"""The engine's moving parts: listeners, dialing, relaying, UDP association."""
