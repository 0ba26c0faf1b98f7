"""Synthetic feature tables for the env and reward tests."""

from __future__ import annotations

import pytest

from tests.envs.synthetic import synthetic_tables


@pytest.fixture(scope="module")
def tables():
    return synthetic_tables()
