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
