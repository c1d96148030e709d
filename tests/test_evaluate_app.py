"""The evaluate app on a tiny export: the JSON, the figures, and one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tfvae
from tfvae import export
from tfvae._tf import tfk
from tfvae.apps import evaluate

FIELDS = {"nll", "bits_per_dim", "neg_elbo", "kl", "reconstruction", "active_units",
          "reconstruction_mse", "num_samples", "num_examples", "dataset", "split"}
FIGURES = {"reconstructions.png", "samples.png", "traversals.png", "latents.png"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model = tfvae.VAE(latent_dim=3, hidden_units=(32,), seed=0)
    model.compile(optimizer=tfk.optimizers.Adam(2e-3))
    model.fit(tfvae.data.load("synthetic", "train", 64, binarize="static", limit=256),
              epochs=1, verbose=0)
    path = root / "run"
    export.save(model, path, metadata={"dataset": {"name": "synthetic", "binarize": "static"}},
                iwae_samples=5)
    return model, str(path)


def test_evaluate_writes_json_and_figures(exported, tmp_path):
    model, path = exported
    out = tmp_path / "out"
    code = evaluate.main(["--model", path, "--num-samples", "20", "--num-examples", "60",
                          "--batch-size", "30", "--out", str(out)])
    assert code == 0
    numbers = json.loads((out / "evaluation.json").read_text())
    assert FIELDS <= set(numbers)
    assert set(os.listdir(out)) >= FIGURES
    # The rebuilt model is the trained one: same NLL as the in-memory model, same seeds.
    x = tfvae.data.load_arrays("synthetic", "test")[0][:60].astype(np.float32) / 255
    x = (x > 0.5).astype(np.float32)
    direct = np.concatenate([tfvae.evaluation.log_likelihood(model, x[s:s + 30],
                                                             num_samples=20, seed=s)
                             for s in (0, 30)])
    np.testing.assert_allclose(numbers["nll"], -direct.mean(), rtol=1e-4)
    np.testing.assert_allclose(numbers["bits_per_dim"], numbers["nll"] / (784 * np.log(2)))
    assert numbers["nll"] <= numbers["neg_elbo"] + 0.5
    assert 0 <= numbers["active_units"] <= 3


def test_inference_gaps_are_reported_with_what_they_are(exported, tmp_path, capsys):
    _, path = exported
    out = tmp_path / "gaps"
    code = evaluate.main(["--model", path, "--num-samples", "50", "--num-examples", "8",
                          "--batch-size", "8", "--inference-gaps", "4", "--refine-steps", "30",
                          "--out", str(out)])
    assert code == 0
    gaps = json.loads((out / "evaluation.json").read_text())["inference_gaps"]
    assert gaps["num_examples"] == 4 and gaps["refine_steps"] == 30
    g = {k: v["mean"] for k, v in gaps.items() if isinstance(v, dict)}
    # The gaps are the differences of the three numbers they come from, and refinement
    # never lowers the ELBO (refine_posterior keeps the encoder's q if it would).
    np.testing.assert_allclose(g["amortization_gap"], g["refined_elbo"] - g["amortized_elbo"],
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g["approximation_gap"], g["log_px"] - g["refined_elbo"],
                               rtol=1e-5, atol=1e-4)
    assert g["amortization_gap"] >= 0
    assert "amortization_gap: " in capsys.readouterr().out
    assert "estimate" in gaps["log_px"]["kind"]


@pytest.mark.parametrize("argv,message", [
    (["--model", "/nonexistent/model"], "does not exist"),
    (["--num-samples", "0"], "--num-samples must be a positive int"),
    (["--split", "validation"], "unknown --split 'validation'"),
])
def test_bad_input_is_one_line_and_exit_2(exported, capsys, argv, message):
    _, path = exported
    full = ["--model", path] + argv if argv[0] != "--model" else argv
    assert evaluate.main(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "tfvae.apps.evaluate", "--model", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.strip().splitlines() if "tfvae-evaluate" in l]
    assert len(lines) == 1 and "neither a SavedModel" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_figures_are_readable_labelled_and_named(exported, tmp_path):
    from tfvae.apps import _figures
    from tfvae.callbacks import posterior_moments
    model, _ = exported
    x = tfvae.data.load_arrays("synthetic", "test")[0][:40].astype(np.float32) / 255
    means, stds = posterior_moments(model, x)
    # KL_d against the closed form of the Gaussian KL, dim by dim.
    q = model.encode(x)
    exact = np.mean(tfvae._tf.tfd.kl_divergence(
        tfvae._tf.tfd.Normal(q.mean(), q.stddev()), tfvae._tf.tfd.Normal(0.0, 1.0)).numpy(), 0)
    np.testing.assert_allclose(_figures.dimension_kl(means, stds), exact, rtol=1e-4, atol=1e-5)
    _figures.write_figures(model, x, np.arange(40) % 3, means, stds, model(x).numpy(), tmp_path,
                           0, label_names=["a", "b", "c"],
                           dimension_factors=[["shape", 0.5], None, ["scale", 0.2]])
    import matplotlib.image
    tile = matplotlib.image.imread(tmp_path / "samples.png")
    assert tile.shape[1] == 8 * 29 * 3 - 3  # 8 tiles of 28 px + borders, drawn at 3x
    assert set(os.listdir(tmp_path)) == FIGURES


def test_disentanglement_scores_with_factor_labels(exported, monkeypatch, capsys):
    from tfvae.apps import _disentanglement
    tiny = {"mig": {"num_points": 300}, "factor_vae_score": {"num_train": 40, "num_eval": 20,
                                                              "batch_size": 16},
            "dci": {"num_train": 200, "num_test": 100}, "sap": {"num_train": 200,
                                                                "num_test": 100},
            "mig_chen": {"num_points": 600, "num_samples": 100}}
    monkeypatch.setattr(_disentanglement, "QUICK", tiny)
    model = tfvae.VAE(input_shape=(64, 64, 1), latent_dim=4, hidden_units=(16,), seed=0)
    result = _disentanglement.scores(model, "dsprites", seed=1, quick=True)
    keys = {"mig", "mig_chen", "factor_vae_score", "dci_disentanglement", "dci_completeness",
            "dci_informativeness_test", "sap"}
    assert set(result["scores"]) == keys
    assert all(0 <= v <= 1 for v in result["scores"].values()), result["scores"]
    assert len(result["dimension_factors"]) == 4 and result["sample_sizes"].startswith("quick")
    assert _disentanglement.summary_line(result).startswith("disentanglement: MIG ")
    with pytest.raises(ValueError, match="takes \\[28, 28, 1\\] images but 'dsprites'"):
        _disentanglement.scores(exported[0], "dsprites", quick=True)


def test_disentanglement_needs_a_dataset_with_factors(exported, tmp_path, capsys):
    _, path = exported
    code = evaluate.main(["--model", path, "--num-examples", "8", "--num-samples", "2",
                          "--disentanglement", "quick", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and "has no ground-truth factors" in err[0], err
    assert not os.path.exists(tmp_path / "o")
