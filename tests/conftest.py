import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tfvae._tf import tf, tfk  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    tfk.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def synthetic_batch():
    """64 synthetic images [64, 28, 28, 1] in [0, 1], binarized."""
    import tfvae
    return next(iter(tfvae.data.load("synthetic", "test", 64, binarize="static")))


def rng(seed=0):
    return np.random.default_rng(seed)
