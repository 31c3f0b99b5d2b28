import numpy as np
import pytest

import backprop_rs as bp


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, in both generators."""
    bp.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
