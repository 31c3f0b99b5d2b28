import os

import numpy as np
import pytest

import backprop_rs as bp

_GPU = None


def gpu_or_skip():
    """Skips the calling test when no GPU adapter exists, with the reason; under
    BACKPROP_REQUIRE_GPU=1 (CI, on lavapipe) a missing adapter is a failure instead."""
    global _GPU
    if _GPU is None:
        _GPU = bp.gpu.is_available()
    if not _GPU:
        reason = "no GPU adapter (install Mesa's lavapipe: scripts/setup-lavapipe.sh)"
        if os.environ.get("BACKPROP_REQUIRE_GPU") == "1":
            pytest.fail(f"BACKPROP_REQUIRE_GPU=1 but {reason}")
        pytest.skip(reason)


def tool_or_skip(what, ok):
    """Skips the calling test when an optional tool (Graphviz, Chromium, matplotlib) is
    missing, saying which; under BACKPROP_REQUIRE_VIZ=1 (CI: scripts/setup-viz-tools.sh
    installs them) that is a failure instead."""
    if ok:
        return
    if os.environ.get("BACKPROP_REQUIRE_VIZ") == "1":
        pytest.fail(f"BACKPROP_REQUIRE_VIZ=1 but {what} is missing")
    pytest.skip(f"{what} is not installed")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, in both generators."""
    bp.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
