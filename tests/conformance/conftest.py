"""Conformance suite fixtures: every test runs once per available engine
configuration (``zjit.runtime.engine_configs()``); tests never name engines."""

from __future__ import annotations

import pytest
from engine_harness import CONFIGS, EngineCfg


@pytest.fixture(params=CONFIGS, ids=[c.id for c in CONFIGS])
def engine_cfg(request: pytest.FixtureRequest) -> EngineCfg:
    """One engine configuration (id, backend, policy overrides)."""
    cfg: EngineCfg = request.param
    return cfg
