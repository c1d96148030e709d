"""The latent app end to end on synthetic data, its dequantized units, and one-line errors."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfvae.apps import latent as app
from tfvae.latent import GaussianMixture, PPCA

SMALL = ["--dataset", "synthetic", "--limit", "300", "--test-limit", "100"]


def test_ppca_end_to_end_in_a_subprocess(tmp_path):
    out = tmp_path / "ppca"
    proc = subprocess.run([sys.executable, "-m", "tfvae.apps.latent", "--model", "ppca",
                           "--latent-dim", "4", "--method", "em", *SMALL, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dequantized x = (pixel + u)/256" in proc.stdout
    assert "nats/image (exact)" in proc.stdout and "bits/dim" in proc.stdout
    assert "reloaded: test log p identical" in proc.stdout
    assert {"model.npz", "results.json", "samples.png", "components.png", "loglik.png"} <= set(
        os.listdir(out))
    results = json.loads((out / "results.json").read_text())
    # Independently: the fitted Gaussian, rescaled to y = 256 x in [0, 256)^D, evaluated with
    # NumPy on the same dequantized test pixels. This checks the -D log 256 Jacobian.
    model = PPCA.load(out / "model.npz")
    y = (np.floor(app.load_grey_levels("synthetic", "test", 100))
         + np.random.default_rng(1).uniform(size=(100, 28, 28, 1))).reshape(100, -1)
    cov = 256.0**2 * model.covariance()
    d = y - 256.0 * model.mean
    _, log_det = np.linalg.slogdet(cov)
    maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    expected = np.mean(-0.5 * (maha + log_det + 784 * math.log(2 * math.pi)))
    assert results["test_log_p_nats"] == pytest.approx(expected, abs=1e-6 * abs(expected))
    assert results["test_bits_per_dim"] == pytest.approx(-expected / (784 * math.log(2)))


def test_gmm_fits_saves_and_reloads(tmp_path, capsys):
    out, again = tmp_path / "gmm", tmp_path / "again"
    assert app.main(["--model", "gmm", "--num-components", "3", *SMALL, "--out", str(out)]) == 0
    assert {"model.npz", "means.png", "samples.png", "loglik.png"} <= set(os.listdir(out))
    assert app.main(["--model", "gmm", "--load", str(out / "model.npz"), *SMALL,
                     "--out", str(again)]) == 0
    first, second = (json.loads((p / "results.json").read_text()) for p in (out, again))
    assert first["test_log_p_nats"] == second["test_log_p_nats"]
    assert GaussianMixture.load(out / "model.npz").num_components == 3
    assert "gmm K=3 em diag covariances" in capsys.readouterr().out


def nan_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(12, 4, 4)).astype(np.float32)
    images[3, 1, 1] = np.nan
    np.save(tmp_path / "nan.npy", images)
    return str(tmp_path / "nan.npy")


@pytest.mark.parametrize("argv, message", [
    (["--model", "ppca", "--latent-dim", "784", *SMALL], "smaller than the data dimension"),
    (["--model", "ppca", "--latent-dim", "2", "--dataset", "synthetic", "--limit", "1"],
     "at least 2 examples"),
    (["--model", "gmm", "--num-components", "0", *SMALL], "--num-components must be >= 1"),
    (["--model", "ppca", *SMALL], "needs --latent-dim"),
    (["--model", "gmm", "--num-components", "2", "--method", "closed_form", *SMALL],
     "not one of ['em', 'online']"),
    (["--model", "ppca", "--latent-dim", "2", "--dataset", "NAN"], "NaN"),
    (["--model", "vae", "--latent-dim", "2"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [nan_file(tmp_path) if a == "NAN" else a for a in argv]
    assert app.main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfvae-latent: error:") and message in err[0], err


@pytest.mark.slow  # a second TensorFlow start-up; the in-process cases above cover the logic
def test_bad_input_in_a_subprocess_is_one_stderr_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tfvae.apps.latent", "--model", "gmm",
                           "--num-components", "5", "--dataset", "synthetic", "--limit", "3",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert lines == ["tfvae-latent: error: 5 components need at least as many examples; got 3."]
