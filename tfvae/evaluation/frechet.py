"""The Fréchet distance between two sets of features, and the sample-quality score built on it.

```none
d^2(a, b) = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)
```
the squared 2-Wasserstein (Fréchet) distance between the Gaussians N(mu_a, S_a) and
N(mu_b, S_b) fitted to the two sets (Dowson & Landau 1982; the form FID uses). The trace
term is computed from the symmetric matrix S_a^1/2 S_b S_a^1/2 by eigendecomposition in
float64 (no complex square roots): tr((S_a S_b)^1/2) equals the sum of the square roots of
its eigenvalues.

The score `sample_frechet` is this distance between the judging classifier's features
(`tfvae.evaluation.judge`) of N model samples and of the test images: a
*Fashion-MNIST-feature Fréchet distance*, not FID (which uses Inception-v3 features of
ImageNet; numbers are not comparable with FID). It is an estimate: moments from finite sets
bias it upward (by roughly tr(S_a)/N_a + tr(S_b)/N_b for independent sets), so compare
models only at equal sample counts, as the reports do (10,000 samples by default).

#### References
[1] Dowson & Landau (1982), The Fréchet distance between multivariate normal distributions.
[2] Heusel et al. (2017), GANs trained by a two time-scale update rule converge to a local
    Nash equilibrium (FID), arXiv:1706.08500.
"""

import numpy as np

LABEL = "Fashion-MNIST-feature Fréchet distance"
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST"}


def label(dataset):
    """What the score is called for a judge trained on `dataset` (never "FID")."""
    return f"{DATASET_NAMES.get(dataset, dataset)}-feature Fréchet distance"


def _sqrt_psd(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b):
    """d^2 between N(mu_a, cov_a) and N(mu_b, cov_b), exact for the given moments (float)."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(
        np.float64)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or \
            cov_a.shape != (mu_a.shape[-1], mu_a.shape[-1]):
        raise ValueError(f"moments must match: mu {mu_a.shape} and {mu_b.shape}, covariances "
                         f"{cov_a.shape} and {cov_b.shape}.")
    root = _sqrt_psd(cov_a)
    middle = root @ cov_b @ root
    cross = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def moments(features):
    """(mean [F], covariance [F, F]) of features [N, F], N >= 2 (unbiased covariance)."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be [N >= 2, F]; got shape {list(features.shape)}.")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance_of(features_a, features_b):
    """The Fréchet distance between Gaussians fitted to two feature sets [N, F] (an estimate
    of the distance between their distributions; 0 for identical sets)."""
    return frechet_distance(*moments(features_a), *moments(features_b))


def sample_frechet(sample, judge, reference_images, num_samples=10000, batch_size=500):
    """The Fréchet distance in the judge's feature space between `num_samples` generated
    images and `reference_images`.

    Args:
        sample: a callable n -> images [n, H, W, C] in [0, 1] (the model's prior samples, or
            reconstructions of reference images).
        judge: a `tfvae.evaluation.judge.Judge`.
        reference_images: real images [M, H, W, C] in [0, 1] (the test set).
    Returns:
        {"frechet": float, "label", "num_samples", "num_reference", "judge_test_accuracy"}.
    """
    if not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an int >= 2; got {num_samples!r}.")
    feats = [judge.features(np.asarray(sample(min(batch_size, num_samples - i))))
             for i in range(0, num_samples, batch_size)]
    value = frechet_distance_of(np.concatenate(feats), judge.features(reference_images))
    return {"frechet": value, "label": label(judge.dataset), "num_samples": num_samples,
            "num_reference": int(len(reference_images)),
            "judge_test_accuracy": judge.test_accuracy}


def model_frechet(model, dataset, num_samples=10000, seed=0, log=None):
    """`sample_frechet` of a tfvae model's prior samples (the decoder's mean) against the
    test split of `dataset`, with that dataset's cached judge (`tfvae.evaluation.judge`)."""
    from tfvae import data as data_lib  # noqa: PLC0415
    from tfvae.evaluation import judge as judge_lib  # noqa: PLC0415
    shape = tuple(model.image_shape)
    x_train, y_train = data_lib.load_arrays(dataset, "train", image_shape=shape)
    x_test, y_test = data_lib.load_arrays(dataset, "test", image_shape=shape)
    judge = judge_lib.train_judge(x_train, y_train, x_test, y_test,
                                  int(max(y_train.max(), y_test.max())) + 1, dataset,
                                  seed=seed, log=log)
    seeds = iter(range(seed, seed + 2**30))
    return sample_frechet(lambda n: model.sample(n, seed=next(seeds)).numpy(), judge,
                          x_test.astype(np.float32) / 255.0, num_samples=num_samples)
