"""Shared test settings: in CI a missing dependency fails the run instead of skipping."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI") == "true"


def require(available: bool, message: str) -> None:
    """Skip when something this test needs is missing, except in CI, where that fails."""
    if available:
        return
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed (scripts/system-deps.sh installs it)")
    assert path is not None
    return path
