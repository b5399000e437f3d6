from __future__ import annotations

import pytest

from gilfree import KERNELS, Kernel


@pytest.fixture(params=list(KERNELS), ids=list(KERNELS))
def kernel(request: pytest.FixtureRequest) -> Kernel:
    """Every registered kernel: a new entry in the registry is tested automatically."""
    return KERNELS[request.param]
