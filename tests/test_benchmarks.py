"""The side-by-side benchmark must not rot: its quick mode runs every contender end to end.
No speed is asserted (timings on a shared 2-core machine mean nothing here)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_benchmark_quick_mode_runs_every_contender(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = next(l for l in lines if l.startswith("| contender"))
    assert "x TFP layers" in header and "x Keras 3" in header and "test NLL (k=10)" in header
    rows = [l for l in lines if l.startswith("| ") and not l.startswith("| contender")]
    sys.path.insert(0, ROOT)
    from benchmarks.run import CONTENDERS
    assert len(rows) == len(CONTENDERS) == 7  # every contender, the plain-compile one too
    import json
    results = json.loads(out.read_text())
    for r in results.values():
        assert r["train_images_per_s"] > 0 and r["peak_rss_mb"] > 0
        # Binarized synthetic images: the NLL is a positive number of nats below 784 log 2.
        assert 0 < r["test_nll"] < 784 * 0.6932 and 0 < r["test_neg_elbo"] < 784 * 0.6932
        assert r["test_nll"] <= r["test_neg_elbo"] + 1.0  # k=10 bound vs ELBO, noisy
    assert "straightforward loop" in proc.stdout


def test_benchmark_rejects_unknown_contenders():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"),
                           "--contenders", "pytorch"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown contenders ['pytorch']" in proc.stderr


def test_rounds_report_the_median_and_each_rounds_ratio():
    sys.path.insert(0, ROOT)
    from benchmarks.run import table

    def result(name, rates):
        return {"contender": name, "train_images_per_s": sorted(rates)[len(rates) // 2],
                "train_images_per_s_rounds": rates, "peak_rss_mb": 1.0,
                "test_neg_elbo": 2.0, "test_nll": 1.0, "eval_images_per_s": 1.0}
    text = table({"tfp_layers": result("base", [100.0, 200.0, 100.0]),
                  "tfvae_full_plain": result("ours", [150.0, 200.0, 130.0])}, "m")
    # Per round 1.50, 1.00, 1.30: the median ratio 1.30, not the ratio of medians (1.50).
    assert "x TFP layers per round: 1.50, 1.00, 1.30 (median 1.30;" in text
    assert "| ours | 150 | 1.50 |" in text
