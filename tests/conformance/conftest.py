"""Conformance suite fixtures: every test runs once per available engine
configuration (``zjit.runtime.engine_configs()``); tests never name engines."""

from __future__ import annotations

import pytest
from engine_harness import EngineCfg

from zjit.runtime import engine_configs

CONFIGS = [EngineCfg(ident, backend, tuple(sorted(over.items())))
           for ident, backend, over in engine_configs()]


@pytest.fixture(params=CONFIGS, ids=[c.id for c in CONFIGS])
def engine_cfg(request: pytest.FixtureRequest) -> EngineCfg:
    """One engine configuration (id, backend, policy overrides)."""
    cfg: EngineCfg = request.param
    return cfg
