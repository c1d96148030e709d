"""Kozachenko-Leonenko k-nearest-neighbour entropy estimates, for distributions known only
through samples (point-mass and implicit posteriors have no density to average).

```none
H^(z) = psi(n) - psi(k) + log V_D + (D/n) sum_i log eps_i
eps_i: distance from z_i to its k-th nearest other sample,  V_D = pi^(D/2) / Gamma(D/2 + 1)
```
The estimate is consistent (n -> inf at fixed k) but biased at finite n, increasingly so
in high D: compare numbers only at equal n and D (benchmarks/README.md has measurements).

#### References
[1] Kozachenko & Leonenko (1987), Sample estimate of the entropy of a random vector,
    Problems Inform. Transmission 23.
[2] Kraskov, Stoegbauer & Grassberger (2004), Estimating mutual information,
    Phys. Rev. E 69, Eq. 20.
"""

import logging
import math

import numpy as np

from tfvae import validation
from tfvae._tf import tf

log = logging.getLogger(__name__)


def knn_entropy(z, k=3, chunk_size=1000):
    """Kozachenko-Leonenko entropy estimate of the density that z samples, nats.

    Args:
        z: samples [n, D] (n > k).
        k: the neighbour rank. Default value: 3 (a few duplicate points, such as identical
            images mapped to identical codes, then cannot make a distance 0).
        chunk_size: rows per block of the pairwise-distance computation (memory
            O(chunk_size * n)). Default value: 1000.

    Returns:
        A float, H^ in nats.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2:
        raise ValueError(f"`z` must be [n, D]; got shape {z.shape}.")
    n, d = z.shape
    k = validation.positive_int(k, "k")
    chunk_size = validation.positive_int(chunk_size, "chunk_size")
    if n <= k:
        raise ValueError(f"The kNN entropy needs more than k={k} samples; got {n}.")
    eps = knn_distances(z, k, chunk_size)
    zeros = int(np.sum(eps <= 0))
    if zeros:
        log.warning("knn_entropy: %d of %d points have %d+ exact duplicates; their distance is "
                    "floored, which biases the entropy down.", zeros, n, k)
        eps = np.maximum(eps, np.min(eps[eps > 0]) if np.any(eps > 0) else 1e-12)
    log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1)
    psi_n, psi_k = tf.math.digamma(tf.constant([n, k], tf.float64)).numpy()
    return float(psi_n - psi_k + log_unit_ball + d * np.mean(np.log(eps)))


def knn_distances(z, k, chunk_size=1000):
    """Distance from each row of z [n, D] to its k-th nearest other row, [n] float64.

    One dimension is sorted (O(n log n + n k)); more are compared block by block,
    O(n^2 D) time and O(chunk_size * n) memory.
    """
    z = np.asarray(z, np.float64)
    if z.shape[1] == 1:
        return _knn_distances_1d(z[:, 0], k)
    n = len(z)
    sq = np.sum(z**2, 1)
    eps = np.empty(n)
    for start in range(0, n, chunk_size):
        block = z[start:start + chunk_size]
        dist2 = np.maximum(sq[start:start + chunk_size, None] + sq[None] - 2 * block @ z.T, 0)
        # index k of the sorted row skips the point itself (distance 0 at index 0)
        eps[start:start + len(block)] = np.sqrt(np.partition(dist2, k, axis=1)[:, k])
    return eps


def _knn_distances_1d(x, k):
    """Distance from each point to its k-th nearest other point, in O(n k) after a sort."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n = len(xs)
    padded = np.concatenate([np.full(k, -np.inf), xs, np.full(k, np.inf)])
    offsets = np.concatenate([np.arange(-k, 0), np.arange(1, k + 1)])
    window = padded[np.arange(n)[:, None] + k + offsets[None]]              # [n, 2k]
    dists = np.abs(window - xs[:, None])
    eps = np.empty(n)
    eps[order] = np.partition(dists, k - 1, axis=1)[:, k - 1]
    return eps
