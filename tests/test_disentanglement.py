"""Disentanglement metrics on constructed encoders of a toy with known factors.

The toy's observation is its three factors (4, 5 and 6 classes, scaled to [0, 1]) plus two
N(0, 1) noise columns, so `lambda x: x` is a perfectly disentangled code with two noise
dims, `x @ R` mixes the factors, `x[:, perm]` relabels dims and zeros carry nothing.
"""

import numpy as np
import pytest

from tfvae._tf import tfd
from tfvae.evaluation import disentanglement as dis
from tfvae.evaluation.dci_sap import importance_completeness, importance_disentanglement
from tfvae.evaluation.ground_truth import FactorToy, for_dataset

TOY = FactorToy((4, 5, 6), num_noise=2)
V = np.ones(3) / np.sqrt(3)
ROTATION = np.eye(5)
ROTATION[:3, :3] = np.eye(3) - 2 * np.outer(V, V)  # every factor spread over the three dims
PERM = np.array([3, 0, 4, 1, 2])
ENCODERS = {"identity": lambda x: x, "rotated": lambda x: x @ ROTATION,
            "permuted": lambda x: x[:, PERM], "constant": lambda x: np.zeros((len(x), 5))}
SMALL = {"mig": dict(num_points=5000),
         "factor_vae_score": dict(num_train=500, num_eval=300, num_variance_estimate=2000),
         "dci": dict(num_train=500, num_test=300), "sap": dict(num_train=1000, num_test=500),
         "sap_continuous": dict(num_train=1000, num_test=500, continuous_factors=True),
         "mig_chen": dict(num_points=1500)}


def _with_scale(encoder, scale=0.05):
    return lambda x: (encoder(x), np.full((len(x), 5), scale))


@pytest.fixture(scope="module")
def scores():
    """Every metric for every constructed encoder, seed 0 (computed once, ~10 s)."""
    out = {}
    for name, enc in ENCODERS.items():
        out[name] = {
            "mig": dis.mig(enc, TOY, **SMALL["mig"]),
            "factor_vae_score": dis.factor_vae_score(enc, TOY, **SMALL["factor_vae_score"]),
            "dci": dis.dci(enc, TOY, **SMALL["dci"]),
            "sap": dis.sap(enc, TOY, **SMALL["sap"]),
            "sap_continuous": dis.sap(enc, TOY, **SMALL["sap_continuous"]),
            "mig_chen": dis.mig_chen(_with_scale(enc), TOY, **SMALL["mig_chen"])}
    return out


def test_mig_matches_a_hand_computed_value():
    # y1 = (0, 0, 1, 1), y2 = (0, 1, 0, 1); z1 copies y1, z2 = (0, 1, 1, 1) is 1 unless both 0.
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    ln2 = np.log(2)
    h_z2 = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    m = h_z2 - 0.5 * ln2          # I(z2; y1) = I(z2; y2) = H(z2) - H(z2 | y) = 0.2158 nats
    result = dis.mig_from_codes(codes, factors)
    np.testing.assert_allclose(result["mutual_info"], [[ln2, 0.0], [m, m]], atol=1e-12)
    # y1: gap I(z1) - I(z2) = ln2 - m; y2: gap m - 0; each over H(y) = ln 2.
    np.testing.assert_allclose(result["mig_per_factor"], [(ln2 - m) / ln2, m / ln2], atol=1e-12)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    a, b = np.random.default_rng(0).integers(0, 5, (2, 300))
    assert dis.discrete_mutual_info(a, b) == pytest.approx(
        sklearn_metrics.mutual_info_score(a, b), abs=1e-12)


def test_dci_from_a_hand_computed_importance_matrix():
    # Dim 0 is about both factors (D_0 = 0), dim 1 only about factor 1 (D_1 = 1); weights
    # 2/3, 1/3. Factor 0 uses dim 0 only (C = 1), factor 1 both equally (C = 0); 1/3, 2/3.
    r = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert importance_disentanglement(r) == pytest.approx(1 / 3, abs=1e-9)
    assert importance_completeness(r) == pytest.approx(1 / 3, abs=1e-9)
    assert importance_disentanglement(np.eye(3)) == pytest.approx(1.0, abs=1e-9)
    assert importance_disentanglement(np.ones((3, 3))) == pytest.approx(0.0, abs=1e-9)


def test_factors_plus_noise_score_near_one(scores):
    s = scores["identity"]
    assert s["mig"]["mig"] > 0.97
    assert s["factor_vae_score"]["factor_vae_score"] == 1.0
    assert s["factor_vae_score"]["num_active_dims"] == 5
    assert s["dci"]["disentanglement"] > 0.97 and s["dci"]["completeness"] > 0.97
    assert s["dci"]["informativeness_test"] > 0.99
    assert s["sap_continuous"]["sap"] > 0.97
    assert s["mig_chen"]["mig_chen"] > 0.93


def test_rotated_factors_score_low(scores):
    s, ident = scores["rotated"], scores["identity"]
    assert s["mig"]["mig"] < 0.1
    assert s["factor_vae_score"]["factor_vae_score"] < 0.75
    assert s["dci"]["disentanglement"] < 0.2
    assert s["dci"]["informativeness_test"] > 0.9  # the information is all still there
    assert s["sap"]["sap"] < 0.5 * ident["sap"]["sap"]
    assert s["sap_continuous"]["sap"] < 0.1
    assert s["mig_chen"]["mig_chen"] < 0.1


def test_permuting_code_dims_changes_no_score(scores):
    a, b = scores["identity"], scores["permuted"]
    assert a["mig"]["mig"] == pytest.approx(b["mig"]["mig"], abs=1e-12)
    np.testing.assert_allclose(a["mig"]["mutual_info"][PERM], b["mig"]["mutual_info"])
    labels = dis.dimension_labels(b["mig"], TOY.factor_names)
    assert [lab and lab[0] for lab in labels] == [None, "factor0", None, "factor1", "factor2"]
    assert all(lab[1] > 0.95 for lab in labels if lab)
    assert a["factor_vae_score"] == b["factor_vae_score"]
    for key in ("disentanglement", "completeness", "informativeness_test"):
        assert a["dci"][key] == pytest.approx(b["dci"][key], abs=1e-9)
    assert a["sap"]["sap"] == b["sap"]["sap"]
    assert a["sap_continuous"]["sap"] == pytest.approx(b["sap_continuous"]["sap"], abs=1e-12)
    # mig_chen draws z ~ q(z|x) per dim, so permuted dims get other noise: equal within MC.
    assert a["mig_chen"]["mig_chen"] == pytest.approx(b["mig_chen"]["mig_chen"], abs=0.02)


def test_constant_encoder_scores_zero_or_chance(scores):
    s = scores["constant"]
    assert s["mig"]["mig"] == 0.0
    assert s["factor_vae_score"] == {"factor_vae_score": 0.0, "train_accuracy": 0.0,
                                     "eval_accuracy": 0.0, "num_active_dims": 0}
    assert s["dci"]["disentanglement"] == pytest.approx(0.0, abs=1e-9)
    chance = np.mean([1 / 4, 1 / 5, 1 / 6])
    assert s["dci"]["informativeness_test"] == pytest.approx(chance, abs=0.05)
    assert s["sap"]["sap"] == 0.0 and s["sap_continuous"]["sap"] == 0.0
    assert s["mig_chen"]["mig_chen"] < 0.01


def test_collapsed_dims_are_pruned_and_seeds_repeat():
    shrink = np.array([1.0, 1.0, 1.0, 0.01, 0.01])  # noise dims' std 0.01 < 0.05
    result = dis.factor_vae_score(lambda x: x * shrink, TOY, **SMALL["factor_vae_score"])
    assert result["num_active_dims"] == 3 and result["factor_vae_score"] == 1.0
    rotated = ENCODERS["rotated"]
    first = dis.factor_vae_score(rotated, TOY, seed=3, **SMALL["factor_vae_score"])
    assert first == dis.factor_vae_score(rotated, TOY, seed=3, **SMALL["factor_vae_score"])
    assert dis.mig(rotated, TOY, seed=3, num_points=500)["mig"] != \
        dis.mig(rotated, TOY, seed=4, num_points=500)["mig"]


def test_encoder_may_return_a_distribution():
    def encoder(x):
        return tfd.MultivariateNormalDiag(loc=x, scale_diag=np.full(x.shape, 0.05))
    assert dis.mig(encoder, TOY, num_points=2000)["mig"] > 0.95
    assert dis.mig_chen(encoder, TOY, num_points=1000)["mig_chen"] > 0.9


def test_evaluate_all_reports_every_headline_scalar():
    small = dict(mig=dict(num_points=500), dci=dict(num_train=200, num_test=50),
                 factor_vae_score=dict(num_train=50, num_eval=50, num_variance_estimate=500),
                 sap=dict(num_train=300, num_test=100), mig_chen=dict(num_points=400))
    out = dis.evaluate_all(_with_scale(ENCODERS["identity"]), TOY, **small)
    assert sorted(out) == ["dci_completeness", "dci_disentanglement", "dci_informativeness_test",
                           "factor_vae_score", "mig", "mig_chen", "sap"]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    assert "mig_chen" not in dis.evaluate_all(ENCODERS["identity"], TOY, **small)


def _one_line_error(fn, match):
    with pytest.raises(ValueError, match=match) as info:
        fn()
    assert "\n" not in str(info.value)


def test_bad_inputs_get_one_line_errors():
    ident = ENCODERS["identity"]
    _one_line_error(lambda: for_dataset("fashion_mnist"),
                    r"'fashion_mnist' has no ground-truth factors.*\['dsprites'\]")
    _one_line_error(lambda: dis.mig(ident, "mnist"), "has no ground-truth factors")
    _one_line_error(lambda: dis.dci(ident, object()), "object has no ground-truth factors")
    _one_line_error(lambda: dis.factor_vae_score(ident, TOY, batch_size=1),
                    r"`batch_size` must be an int >= 2 \(each vote needs a variance")
    _one_line_error(lambda: dis.factor_vae_score(ident, TOY, num_eval=0), "`num_eval` must be")
    _one_line_error(lambda: dis.mig(ident, TOY, num_points=1), "`num_points` must be")
    _one_line_error(lambda: dis.dci(ident, TOY, num_train=2, seed=1), "single value|>= 2")
    _one_line_error(lambda: dis.mig_chen(ident, TOY, num_points=100),
                    "mig_chen needs q\\(z\\|x\\)")
    _one_line_error(lambda: dis.mig(lambda x: x[:, 0], TOY, num_points=10),
                    r"codes of shape \[B, D\]")


def test_a_tfvae_model_on_dsprites_runs_every_metric_path():
    """A live (untrained) conv VAE: `model.encode` returns a MultivariateNormalTriL; the
    metrics use its mean, and mig_chen its per-dim stddev, on rendered dSprites images."""
    import tfvae
    model = tfvae.VAE(latent_dim=4, posterior="full_covariance", likelihood="bernoulli",
                      input_shape=(64, 64, 1), architecture="conv", hidden_units=(8, 8, 16))
    data = for_dataset("dsprites")
    result = dis.mig(model.encode, data, num_points=300)
    assert result["mutual_info"].shape == (4, 5) and 0.0 <= result["mig"] <= 1.0
    chen = dis.mig_chen(model.encode, data, num_points=300)
    assert chen["factors"] == ["scale", "orientation", "posX", "posY"]
    assert chen["mutual_info"].shape == (4, 4) and 0.0 <= chen["mig_chen"] <= 1.0
