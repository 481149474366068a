"""Fixtures for the allowlist tests: throwaway keys and an allowlist root around them."""

from __future__ import annotations

import pytest

from tests.allowlist.support import Keys, make_root


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def root(tmp_path, keys):
    return make_root(tmp_path / "contracts_allowlist", keys)
