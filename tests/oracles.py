"""Independent NumPy computations that tests compare tfvae's TensorFlow code against."""

import numpy as np


def expected_rbf_kernel(mean1, cov1, mean2, cov2, bandwidth):
    """E exp(-||x - y||^2 / (2 h^2)) for independent x ~ N(mean1, cov1), y ~ N(mean2, cov2).

    NumPy float64; the closed form in the module docstring. Used to test `mmd`.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov = np.asarray(cov1, np.float64) + np.asarray(cov2, np.float64)
    d = len(mean1)
    diff = mean1 - mean2
    _, logdet = np.linalg.slogdet(np.eye(d) + cov / bandwidth)
    quad = diff @ np.linalg.solve(cov + bandwidth * np.eye(d), diff)
    return float(np.exp(-0.5 * logdet - 0.5 * quad))
