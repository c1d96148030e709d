"""The Fréchet distance against closed forms, and the attribute-vector indicator on a dataset
whose attribute is a known latent direction; the attributes app end to end."""

import json
import os

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from tfvae.evaluation import attributes, frechet


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_the_closed_form_for_two_gaussians(seed):
    rng = np.random.default_rng(seed)
    d = 6
    mu_a, mu_b, cov_a, cov_b = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d)
    # Independent route: the FID form with scipy's general matrix square root of A B.
    expected = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b)
                     - 2 * np.trace(scipy.linalg.sqrtm(cov_a @ cov_b).real))
    assert frechet.frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected,
                                                                               rel=1e-9)
    # Diagonal covariances: |dmu|^2 + sum (sigma_a - sigma_b)^2.
    sa, sb = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    assert frechet.frechet_distance(mu_a, np.diag(sa**2), mu_b, np.diag(sb**2)) == \
        pytest.approx(np.sum((mu_a - mu_b) ** 2) + np.sum((sa - sb) ** 2), rel=1e-10)
    # From samples: the estimate approaches it (bias ~ tr(S)/N, well under the tolerance).
    n = 200_000
    xa = rng.multivariate_normal(mu_a, cov_a, n)
    xb = rng.multivariate_normal(mu_b, cov_b, n)
    assert frechet.frechet_distance_of(xa, xb) == pytest.approx(expected, abs=0.05)
    # Identical sets: 0 (up to float round-off), whatever their spread.
    assert abs(frechet.frechet_distance_of(xa[:5000], xa[:5000])) < 1e-8


def _linear_world(seed, n=6000, d=6, pixels=12):
    """z ~ N(0, I); images x = z A; the attribute is z.u > 0.5 (base rate ~0.31)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    mixing = rng.normal(size=(d, pixels))
    z = rng.normal(size=(n, d))
    x = (z @ mixing).astype(np.float32)
    return u, mixing, x, (z @ u > 0.5).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1])
def test_attribute_vector_recovers_a_known_direction_and_the_indicator_reads_it(seed):
    u, mixing, x, labels = _linear_world(seed)
    pinv = np.linalg.pinv(mixing)

    def encode(images):             # the model that represents the attribute: z exactly
        return images @ pinv

    def decode(z):
        return z @ mixing

    def classify(images):           # an ideal judge of the attribute
        return (encode(images) @ u > 0.5).astype(np.int64)

    vector = attributes.attribute_vector(encode(x), labels == 1)
    assert abs(vector @ u) / np.linalg.norm(vector) > 0.995
    # The projection equals E[s | s > .5] - E[s | s < .5], s ~ N(0, 1) (truncated means).
    phi, cdf = scipy.stats.norm.pdf(0.5), scipy.stats.norm.cdf(0.5)
    gap = phi / (1 - cdf) + phi / cdf
    assert vector @ u == pytest.approx(gap, abs=0.06)
    lack = labels == 0
    result = attributes.indicator(encode, decode, classify, x[lack], labels[lack], vector,
                                  (1,), alphas=(0.0, 1.0, 2.0), batch_size=1000)
    ratio, n = result["ratio"], result["num_images"]
    assert ratio[0.0] == 0.0                 # the starting images lack it, and keep lacking it
    assert result["control"] == 1.0
    # alpha = 1: s + v.u > .5 for s < .5, i.e. P(.5 - v.u < s < .5) / P(s < .5).
    shift = vector @ u
    expected = (cdf - scipy.stats.norm.cdf(0.5 - shift)) / cdf
    assert ratio[1.0] == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / n))
    assert ratio[2.0] > 0.97
    # A model that does not represent the direction (its codes have u projected out) moves
    # nothing: the indicator stays at its alpha = 0 rate for every alpha.
    blind = np.eye(len(u)) - np.outer(u, u)
    result = attributes.indicator(lambda im: encode(im) @ blind, decode, classify, x[lack],
                                  labels[lack], attributes.attribute_vector(
                                      encode(x) @ blind, labels == 1), (1,),
                                  alphas=(0.0, 2.0), batch_size=1000)
    assert result["ratio"][0.0] == result["ratio"][2.0] == 0.0


def test_attribute_names_and_bad_input():
    assert attributes.attribute_classes("fashion_mnist", "footwear") == (5, 7, 9)
    assert attributes.attribute_classes("fashion_mnist", "sneaker") == (7,)
    with pytest.raises(ValueError, match="expected one of"):
        attributes.attribute_classes("fashion_mnist", "hat")
    with pytest.raises(ValueError, match="with and without"):
        attributes.attribute_vector(np.zeros((4, 2)), np.ones(4, bool))
    with pytest.raises(ValueError, match="lack the attribute"):
        attributes.indicator(None, None, None, np.zeros((2, 3)), np.array([1, 0]), np.zeros(2),
                             (1,))


@pytest.mark.slow
def test_attributes_app_and_evaluate_frechet_on_a_trained_model(tmp_path, monkeypatch,
                                                                 capsys):
    from tfvae.apps import attributes as attributes_app
    from tfvae.apps import evaluate as evaluate_app
    from tfvae.apps import train as train_app
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "data"))   # the judge's cache
    assert train_app.main(["--dataset", "synthetic", "--latent-dim", "4", "--hidden-units",
                           "32", "--epochs", "2", "--no-jit", "--verbose", "0",
                           "--binarize", "none", "--likelihood", "bernoulli",
                           "--logdir", str(tmp_path / "runs"), "--export-dir",
                           str(tmp_path / "saved"), "--run-name", "m"]) == 0
    model = str(tmp_path / "saved" / "m")
    out = str(tmp_path / "attr")
    capsys.readouterr()
    assert attributes_app.main(["--model", model, "--attribute", "low", "--judge-epochs", "2",
                                "--num-images", "100", "--out", out]) == 0
    printed = capsys.readouterr().out
    report = json.load(open(os.path.join(out, "attribute_low.json")))
    assert sorted(report["ratio"]) == ["0.0", "0.5", "1.0", "1.5", "2.0"]
    assert report["num_images"] == 100 and report["judge_test_accuracy"] > 0.8
    # (a 2-epoch model: its quality is not the point here; the math is tested above)
    assert all(0 <= r <= 1 for r in report["ratio"].values())
    assert 0 <= report["control_same_class_at_alpha_0"] <= 1
    assert os.path.exists(os.path.join(out, "attribute_low.png"))
    assert "judging classifier test accuracy" in printed and "control:" in printed
    # The judge is cached: a second run does not train it again.
    assert attributes_app.main(["--model", model, "--attribute", "class_3", "--judge-epochs",
                                "2", "--num-images", "20", "--out", out]) == 0
    assert "cached" in capsys.readouterr().out
    assert attributes_app.main(["--model", model, "--attribute", "hat"]) == 2
    assert "unknown attribute 'hat'" in capsys.readouterr().err
    assert evaluate_app.main(["--model", model, "--num-samples", "2", "--num-examples", "16",
                              "--frechet-samples", "300", "--out", str(tmp_path / "ev")]) == 0
    numbers = json.load(open(tmp_path / "ev" / "evaluation.json"))
    assert numbers["frechet"]["label"] == "synthetic-feature Fréchet distance"
    assert numbers["frechet"]["frechet"] > 0 and numbers["frechet"]["num_samples"] == 300
