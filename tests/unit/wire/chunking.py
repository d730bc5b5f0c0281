"""Shared by the parser tests: the ways a stream is split, and hostile edits of valid input."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import strategies as st


def whole(data: bytes) -> list[bytes]:
    return [data]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    edges = [0, *sorted(set(cuts)), len(data)]
    return [data[lo:hi] for lo, hi in zip(edges, edges[1:], strict=False)]


def mutate(draw: st.DrawFn, wire: bytes) -> bytes:
    """One to three random flips, insertions, deletions or truncations of `wire`."""
    edit = bytearray(wire)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(edit)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and at < len(edit):
            edit[at] = draw(st.integers(0, 255))
        elif action == "insert":
            edit[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete":
            del edit[at : at + draw(st.integers(1, 4))]
        else:
            del edit[at:]
    return bytes(edit)
