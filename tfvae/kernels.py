"""Kernels and the maximum mean discrepancy (MMD) between two samples.

```none
rbf(x, y) = exp(-||x - y||^2 / (2 h^2))                      default h^2 = D
imq(x, y) = C / (C + ||x - y||^2)                            default C = 2 D
MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y),   x, x' ~ P,  y, y' ~ Q
unbiased:  1/(n(n-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
           - 2/(n m) sum_{i,j} k(x_i, y_j)                   (Gretton et al. 2012, Eq. 3)
```
The defaults put the kernel's length scale at the typical distance between two samples of a
D-dimensional standard normal (E||x - y||^2 = 2D), as Tolstikhin et al. (2018) do for IMQ,
so the kernel is neither saturated nor flat for the prior.

For x ~ N(m1, S1), y ~ N(m2, S2) the expected RBF kernel has the closed form

```none
E exp(-||x - y||^2 / (2 h^2)) = det(I + (S1 + S2) / h^2)^(-1/2)
                                * exp(-(m1 - m2)^T (S1 + S2 + h^2 I)^-1 (m1 - m2) / 2)
```
(tests/oracles.py checks `mmd` against it), because x - y ~ N(m1 - m2, S1 + S2) and the kernel is an unnormalized
Gaussian density in x - y.

#### References
[1] Gretton et al. (2012), A Kernel Two-Sample Test, JMLR 13.
[2] Tolstikhin, Bousquet, Gelly & Schoelkopf (2018), Wasserstein Auto-Encoders,
    arXiv:1711.01558.
"""

from tfvae import validation
from tfvae._tf import tf

KERNELS = ("imq", "rbf")


def check_kernel(kernel):
    return validation.choice(kernel, "kernel", KERNELS)


# ---------------------------------------------------------------------------- kernels

def squared_distances(x, y):
    """||x_i - y_j||^2, [N, M], for x [N, D] and y [M, D]; clipped at 0 against round-off."""
    xx = tf.reduce_sum(tf.square(x), -1)[:, None]
    yy = tf.reduce_sum(tf.square(y), -1)[None, :]
    return tf.maximum(xx + yy - 2.0 * tf.matmul(x, y, transpose_b=True), 0.0)


def default_bandwidth(kernel, latent_dim):
    """h^2 = D for "rbf", C = 2 D for "imq": matched to E||x - y||^2 = 2D under N(0, I)."""
    check_kernel(kernel)
    return float(latent_dim) if kernel == "rbf" else 2.0 * float(latent_dim)


def rbf_kernel(x, y, bandwidth=None):
    """exp(-||x_i - y_j||^2 / (2 h^2)), [N, M].

    Args:
        x: [N, D]; y: [M, D].
        bandwidth: h^2. Default value: D (see `default_bandwidth`).
    """
    h2 = bandwidth if bandwidth is not None else default_bandwidth("rbf", x.shape[-1])
    return tf.exp(-squared_distances(x, y) / (2.0 * h2))


def imq_kernel(x, y, bandwidth=None):
    """C / (C + ||x_i - y_j||^2), [N, M] (inverse multiquadric).

    Args:
        x: [N, D]; y: [M, D].
        bandwidth: C. Default value: 2 D (see `default_bandwidth`).
    """
    c = bandwidth if bandwidth is not None else default_bandwidth("imq", x.shape[-1])
    return c / (c + squared_distances(x, y))


_KERNEL_FNS = {"rbf": rbf_kernel, "imq": imq_kernel}


def kernel_matrix(x, y, kernel="rbf", bandwidth=None):
    """The Gram matrix k(x_i, y_j), [N, M], for `kernel` in ("imq", "rbf")."""
    if bandwidth is not None:
        validation.positive(bandwidth, "bandwidth")
    return _KERNEL_FNS[check_kernel(kernel)](x, y, bandwidth)


def mmd(x, y, kernel="rbf", bandwidth=None, unbiased=True):
    """The squared maximum mean discrepancy between the samples x and y, a scalar.

    Args:
        x: samples of P, [N, D] (N >= 2 when unbiased).
        y: samples of Q, [M, D] (M >= 2 when unbiased).
        kernel: "rbf" or "imq". Default value: "rbf".
        bandwidth: h^2 (rbf) or C (imq); default matched to N(0, I) in D dims.
        unbiased: the U-statistic (drops the i = j terms; can be slightly negative, and its
            mean is exactly MMD^2) or, if False, the V-statistic (>= 0, biased up by
            O(1/N)). Default value: True.

    Returns:
        A scalar: the estimate of MMD^2 (in kernel units, not nats).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.convert_to_tensor(y, tf.float32)
    if x.shape.rank != 2 or y.shape.rank != 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"`x` and `y` must be [N, D] and [M, D] with the same D; got "
                         f"{x.shape} and {y.shape}.")
    k_xx = kernel_matrix(x, x, kernel, bandwidth)
    k_yy = kernel_matrix(y, y, kernel, bandwidth)
    k_xy = kernel_matrix(x, y, kernel, bandwidth)
    n = tf.cast(tf.shape(x)[0], tf.float32)
    m = tf.cast(tf.shape(y)[0], tf.float32)
    if unbiased:
        xx = (tf.reduce_sum(k_xx) - tf.linalg.trace(k_xx)) / (n * (n - 1.0))
        yy = (tf.reduce_sum(k_yy) - tf.linalg.trace(k_yy)) / (m * (m - 1.0))
    else:
        xx = tf.reduce_mean(k_xx)
        yy = tf.reduce_mean(k_yy)
    return xx + yy - 2.0 * tf.reduce_mean(k_xy)
