from __future__ import annotations

import pytest


@pytest.fixture
def quick(request: pytest.FixtureRequest) -> bool:
    """True under ``--benchmark-disable`` (CI's smoke run): use tiny sizes so the
    benchmarks run once each in seconds and cannot rot."""
    return bool(request.config.getoption("benchmark_disable"))
