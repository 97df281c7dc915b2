"""Shared test fixtures: where the development data lives, small helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tempfile

REPO = Path(__file__).resolve().parents[1]
# Tests never read or write the developer's real user data (added weights, recent files, autosave).
os.environ["INSTMATT_DATA"] = tempfile.mkdtemp(prefix="instmatt-test-data-")
SHARED = Path(os.environ.get("INSTMATT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only development data pack (../shared); tests that need it fail clearly without it."""
    if not (SHARED / "data").is_dir():
        pytest.fail(f"development data not found at {SHARED} (set INSTMATT_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def data_dir(shared_dir: Path) -> Path:
    return shared_dir / "data"


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"
