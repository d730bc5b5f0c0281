"""Deciding what a connection may do: destination rules and client authentication."""
