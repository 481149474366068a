"""Fixtures for the vetting tests (shared helpers live in tests/allowlist/support.py)."""

from __future__ import annotations

import pytest

from defiagent.allowlist.reviewers import Reviewers
from tests.allowlist.support import Keys


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def reviewers(keys) -> Reviewers:
    return Reviewers.model_validate(
        {
            "threshold": 2,
            "reviewers": [
                {"name": f"r{i}", "address": a.address} for i, a in enumerate(keys.reviewers)
            ],
        }
    )
