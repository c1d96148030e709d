"""Data sources with known generative factors, the input of the disentanglement metrics.

The interface is disentanglement_lib's `GroundTruthData`: a two-step generative process
that first draws factor classes y ~ p(y), then an observation x ~ p(x | y). The metrics
need to draw both (MIG, DCI, SAP) and to draw observations for chosen factors (the
FactorVAE score fixes one factor across a batch), so a source implements:

- `factor_names`, `factor_sizes`: one name and one number of classes per factor;
- `sample_factors(num, rng) -> int64 [num, K]` (default: each factor uniform, independent);
- `sample_observations_from_factors(factors, rng) -> [num, ...]`.

`rng` is always a `numpy.random.Generator`.
"""

import numpy as np

__all__ = ["GroundTruthData", "FactorToy", "for_dataset", "check_ground_truth"]

#: Datasets of `tfvae.data` that have ground-truth factors.
DATASETS_WITH_FACTORS = ("dsprites",)


class GroundTruthData:
    """Base class: factor classes drawn uniformly; subclasses render observations."""

    factor_names = ()
    factor_sizes = ()

    @property
    def num_factors(self):
        return len(self.factor_sizes)

    def sample_factors(self, num, rng):
        """int64 [num, K]: each factor's class drawn uniformly and independently."""
        return np.stack([rng.integers(0, n, num) for n in self.factor_sizes], -1).astype(
            np.int64).reshape(num, self.num_factors)

    def sample_observations_from_factors(self, factors, rng):
        raise NotImplementedError

    def sample(self, num, rng):
        """(factors [num, K], observations [num, ...])."""
        factors = self.sample_factors(num, rng)
        return factors, self.sample_observations_from_factors(factors, rng)

    def sample_observations(self, num, rng):
        return self.sample(num, rng)[1]

    def check_factors(self, factors):
        """int64 [N, K] factors, or a one-line ValueError naming the expected shape/range."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"factors must have shape [N, {self.num_factors}] "
                             f"({', '.join(self.factor_names)}); got {factors.shape}.")
        if np.any(factors < 0) or np.any(factors >= np.array(self.factor_sizes)):
            raise ValueError(f"factor classes out of range; sizes are {list(self.factor_sizes)}.")
        return factors.astype(np.int64)


class FactorToy(GroundTruthData):
    """A toy whose observation is its factors, optionally mixed, plus nuisance noise.

    x = [y / (n - 1) for each factor] @ mixing, then `num_noise` columns of N(0, 1) noise
    that no factor explains. With the identity mixing an encoder `lambda x: x` is a
    perfectly disentangled code of the factors plus noise dimensions; with `x @ Q` for a
    rotation Q it is an entangled one. Metric tests run on it in milliseconds.
    """

    def __init__(self, factor_sizes=(4, 5, 6), num_noise=2, mixing=None, factor_names=None):
        self.factor_sizes = tuple(int(n) for n in factor_sizes)
        if min(self.factor_sizes) < 2:
            raise ValueError(f"every factor needs at least 2 classes; got {self.factor_sizes}.")
        self.factor_names = tuple(factor_names or (f"factor{i}" for i in range(len(
            self.factor_sizes))))
        self.num_noise = num_noise
        self.mixing = None if mixing is None else np.asarray(mixing, np.float64)

    def sample_observations_from_factors(self, factors, rng):
        factors = self.check_factors(factors)
        x = factors / (np.array(self.factor_sizes, np.float64) - 1)
        if self.mixing is not None:
            x = x @ self.mixing
        return np.concatenate([x, rng.normal(size=(len(x), self.num_noise))], axis=1)


def check_ground_truth(data):
    """`data` if it has factors and can render observations from them; else a ValueError."""
    if isinstance(data, str):
        return for_dataset(data)
    missing = [a for a in ("factor_sizes", "sample_factors", "sample_observations_from_factors")
               if not hasattr(data, a)]
    if missing or not len(data.factor_sizes):
        raise ValueError(f"{type(data).__name__} has no ground-truth factors (needs "
                         f"factor_sizes, sample_factors, sample_observations_from_factors); "
                         f"disentanglement metrics need a dataset with factors, e.g. "
                         f"{list(DATASETS_WITH_FACTORS)}.")
    return data


def for_dataset(name):
    """The ground-truth source of a `tfvae.data` dataset name, or a one-line ValueError."""
    if name == "dsprites":
        from tfvae.dsprites import DSprites
        return DSprites()
    raise ValueError(f"dataset {name!r} has no ground-truth factors; disentanglement metrics "
                     f"need one of {list(DATASETS_WITH_FACTORS)}.")
