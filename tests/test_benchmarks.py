"""The side-by-side benchmark must not rot: its quick mode runs every contender end to end.
No speed is asserted (timings on a shared 2-core machine mean nothing here)."""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_benchmark_quick_mode_runs_every_contender(tmp_path):
    sys.path.insert(0, ROOT)
    from benchmarks.run import CONTENDERS, DEFAULT_CONTENDERS
    out = tmp_path / "results.json"
    # Every contender but PyTorch (not a dependency): the defaults and the main job.
    names = ",".join(DEFAULT_CONTENDERS + ["tfvae_main_job"])
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
                           "--contenders", names, "--json", str(out)], capture_output=True,
                          text=True, timeout=1800)  # 8 contenders on 2 shared cores
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = next(l for l in lines if l.startswith("| contender"))
    assert "x TFP layers" in header and "x Keras 3" in header and "test NLL (k=10)" in header
    rows = [l for l in lines if l.startswith("| ") and not l.startswith("| contender")]
    assert len(rows) == len(DEFAULT_CONTENDERS) + 1 == len(CONTENDERS) - 1 == 8
    import json
    results = json.loads(out.read_text())
    main = results.pop("tfvae_main_job")  # the train app: no IWAE figure, phases instead
    assert list(main["peak_rss_by_phase_mb"]) == ["import", "data", "first_step", "end"]
    assert 0 < main["test_neg_elbo"] < 784 * 0.6932 and main["peak_rss_mb"] > 0
    assert "| tfvae main job (train app defaults) |" in proc.stdout
    assert "peak RSS by phase (import / data / first compiled step / end)" in proc.stdout
    assert "`import tensorflow` alone, in a fresh process: peak RSS" in proc.stdout
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


def test_the_torch_contender_needs_an_interpreter_with_torch():
    if subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("this interpreter has PyTorch")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"),
                           "--contenders", "torch"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pass --torch-python" in proc.stderr


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


def test_the_import_floor_is_measured_without_tf_keras(tmp_path, monkeypatch):
    # tfvae sets TF_USE_LEGACY_KERAS=1 in its process; a child that inherited it would skip
    # Keras 3 and read ~80 MB less than "import tensorflow" in a user's shell.
    sys.path.insert(0, ROOT)
    from benchmarks import run
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "${TF_USE_LEGACY_KERAS:-0}"\n')
    fake.chmod(0o755)
    monkeypatch.setitem(run.CHILD_ENV, "TF_USE_LEGACY_KERAS", "1")
    assert run.import_tensorflow_peak_mb(str(fake)) == 0.0


def test_a_contenders_peak_is_its_own_not_its_parents():
    # Linux carries ru_maxrss across fork + exec: a child of a 500 MB process read >= 500 MB.
    big = np.ones(500 * 2**20 // 8)  # touched: 500 MB resident in this (the parent) process
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from benchmarks.common import peak_rss_mb; print(peak_rss_mb())")
    out = subprocess.run([sys.executable, "-c", code, ROOT], capture_output=True, text=True,
                         check=True).stdout
    assert 1 < float(out) < 100, out  # a bare interpreter with NumPy: ~30 MB
    del big


def test_speed_history_reports_the_median_of_the_per_round_ratios():
    sys.path.insert(0, ROOT)
    from benchmarks.speed_history import summarize

    def r(rate, **k):
        return {"train_images_per_s": rate, "peak_rss_mb": 900.0, **k}
    rounds = [{"old": r(150.0, test_elbo=-99.0), "tfp_layers": r(100.0, test_neg_elbo=120.0)},
              {"old": r(200.0, test_elbo=-99.0), "tfp_layers": r(200.0, test_neg_elbo=120.0)},
              {"old": r(130.0, test_elbo=-98.0), "tfp_layers": r(100.0, test_neg_elbo=121.0)}]
    text = summarize(rounds, ["tfp_layers"])
    # Per round 1.50, 1.00, 1.30: the median ratio 1.30, not the ratio of medians (1.00).
    assert "| old | 150 | 1.30 (1.50, 1.00, 1.30) | 900 | 98.00 |" in text
    assert "| tfp_layers | 100 | 1.00 (1.00, 1.00, 1.00) | 900 | 121.00 |" in text
    assert "round 2: old 200, tfp_layers 200" in text


def test_the_main_job_timer_is_installed_when_the_module_is_imported(tmp_path, monkeypatch):
    # TensorFlow looks tf_keras up (find_spec) before it imports it: a hook that fired on
    # the lookup patched a loader the real import never used, and timed nothing.
    import importlib.util
    sys.path.insert(0, ROOT)
    from benchmarks.main_job_any import _AfterImport
    (tmp_path / "tfvae_fake_keras.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    hook = _AfterImport("tfvae_fake_keras", seen.append)
    sys.meta_path.insert(0, hook)
    try:
        assert importlib.util.find_spec("tfvae_fake_keras") is not None and seen == []
        import tfvae_fake_keras
        assert seen == [tfvae_fake_keras] and hook not in sys.meta_path
    finally:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
        sys.modules.pop("tfvae_fake_keras", None)


@pytest.mark.slow
def test_speed_history_times_a_checkout_and_removes_it(tmp_path):
    # HEAD in a temporary worktree: its own tfvae must be the one that ran.
    out = tmp_path / "rounds.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "speed_history.py"), "--revs", "HEAD",
         "--baselines", "tfp_layers", "--dataset", "synthetic", "--limit", "512", "--epochs",
         "2", "--rounds", "1", "--nll-examples", "10", "--nll-samples", "10", "--json",
         str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    (results,) = json.loads(out.read_text())
    (label,) = [n for n in results if n.startswith("tfvae main job @ ")]
    main = results[label]
    assert "(HEAD)" in label and not main["tfvae"].startswith(ROOT), main["tfvae"]
    assert len(main["epoch_seconds"]) == 2 and main["train_images_per_s"] > 0
    assert 0 < main["images_per_epoch"] <= 512  # whole batches of the training split
    assert 0 < -main["test_elbo"] < 784 * 0.6932 and main["peak_rss_mb"] > 0
    assert list(main["peak_rss_by_phase_mb"]) == ["first_step", "end"]
    # In lockstep (the default): one chunk per epoch here (a few steps, one call), and the
    # baseline's chunks beside it.
    chunks = main["lockstep_chunks"]
    assert [c[0] for c in chunks] == [0, 1] and all(c[2] > 0 for c in chunks)
    assert chunks[-1][1] * main["images_per_step"] == main["images_per_epoch"]
    assert [c[0] for c in results["tfp_layers"]["lockstep_chunks"]] == [0, 1]
    assert f"| {label} |" in proc.stdout and "| x TFP layers: median" in proc.stdout
    trees = subprocess.run(["git", "-C", ROOT, "worktree", "list"], capture_output=True,
                           text=True, check=True).stdout
    assert main["tfvae"].rsplit("/", 1)[0] not in trees


def test_speed_history_refuses_a_commit_named_twice_and_a_missing_torch():
    script = os.path.join(ROOT, "benchmarks", "speed_history.py")
    proc = subprocess.run([sys.executable, script, "--revs", "HEAD,HEAD~0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--revs names one commit twice" in proc.stderr
    proc = subprocess.run([sys.executable, script, "--revs", "no-such-rev"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "'no-such-rev' is not a commit" in proc.stderr
    proc = subprocess.run([sys.executable, script, "--torch-python", "/bin/false"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "the torch baseline needs PyTorch" in proc.stderr


_TAKER = """
import json, sys, time
sys.path.insert(0, {root!r})
from benchmarks._lockstep import TURNS
TURNS.begin()
spans = []
for epoch in range(2):
    for step in range(6):
        TURNS.steps_begin()
        t0 = time.time()
        time.sleep(0.02)
        spans.append([t0, time.time()])
        TURNS.steps_end(1)
    TURNS.epoch_end()
print(json.dumps({{"spans": spans, "chunks": TURNS.chunks}}))
"""


def test_lockstep_contenders_take_turns_chunk_by_chunk(tmp_path):
    sys.path.insert(0, ROOT)
    import json

    from benchmarks import _lockstep
    script = tmp_path / "taker.py"
    script.write_text(_TAKER.format(root=ROOT))
    env = {**os.environ, "PYTHONPATH": ""}
    commands = {n: ([sys.executable, str(script)], env, str(tmp_path)) for n in "abc"}
    procs = _lockstep.run(commands, chunk_steps=3, timeout=120)
    assert all(p.returncode == 0 for p in procs.values()), [p.stderr for p in procs.values()]
    out = {n: json.loads(p.stdout) for n, p in procs.items()}
    spans = sorted((s, e, n) for n in out for s, e in out[n]["spans"])
    # One process works at a time: no step overlaps another's ...
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))
    # ... and they go round in order, three steps (a chunk) each: a a a b b b c c c a a a ...
    assert "".join(n for _, _, n in spans) == "aaabbbccc" * 4
    for n in out:
        assert [c[:2] for c in out[n]["chunks"]] == [[0, 3], [0, 3], [1, 3], [1, 3]]
        assert all(0.05 < c[2] < 5 for c in out[n]["chunks"])  # three 20 ms steps, timed


def test_lockstep_survives_a_contender_that_fails_and_times_out_one_that_hangs(tmp_path):
    sys.path.insert(0, ROOT)
    from benchmarks import _lockstep
    env = dict(os.environ)
    ok = (tmp_path / "ok.py")
    ok.write_text(_TAKER.format(root=ROOT))
    commands = {"fails": ([sys.executable, "-c", "raise SystemExit(3)"], env, str(tmp_path)),
                "ok": ([sys.executable, str(ok)], env, str(tmp_path))}
    procs = _lockstep.run(commands, chunk_steps=3, timeout=120)
    assert procs["fails"].returncode == 3 and procs["ok"].returncode == 0
    hang = ([sys.executable, "-c", "import time; time.sleep(60)"], env, str(tmp_path))
    t0 = __import__("time").monotonic()
    with pytest.raises(TimeoutError, match="held its turn past the timeout"):
        _lockstep.run({"hangs": hang, "ok": commands["ok"]}, chunk_steps=3, timeout=3)
    assert __import__("time").monotonic() - t0 < 30


def test_lockstep_pairs_chunk_k_of_each_epoch_after_the_first():
    sys.path.insert(0, ROOT)
    from benchmarks import _lockstep
    from benchmarks.speed_history import summarize_lockstep
    chunks = {"a": [[0, 4, 1.0], [1, 4, 1.0], [1, 2, 0.25], [2, 4, 2.0]],
              "b": [[0, 4, 9.0], [1, 4, 2.0], [1, 2, 1.0]]}
    per_step = {"a": 128.0, "b": 64.0}
    # epoch 1: a 512 img/s against b 128, then a 1,024 against b 128; epoch 0 is skipped and
    # a's chunk of epoch 2 has no partner.
    assert _lockstep.paired(chunks, per_step, "a", "b") == [4.0, 8.0]
    assert _lockstep.spread([1.0, 2.0, 3.0, 4.0, 10.0]) == (3.0, 1.5, 7.0)
    rounds = [{n: {"lockstep_chunks": chunks[n], "images_per_step": per_step[n],
                   "peak_rss_mb": 900.0, "test_neg_elbo": 100.0} for n in "ab"}]
    from benchmarks import run as run_lib
    run_lib.BASELINES.setdefault("b", "B")
    try:
        text = summarize_lockstep(rounds, ["b"])
    finally:
        run_lib.BASELINES.pop("b")
    # a: (512 + 256 + 512) images over 3.25 s after the first epoch.
    # Two pairs: too few for quartiles, the median stands for them.
    assert "| a | 394 | 6.000 [6.000, 6.000] (6.000) | 2 | 900 | 100.00 |" in text, text


def test_pipeline_cpu_times_the_train_apps_batches(tmp_path):
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "pipeline_cpu.py"), "--batches", "5",
         "--warmup", "2", "--repeats", "2", "--", "--dataset", "synthetic", "--limit", "512"],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tfvae"].endswith("tfvae") and out["binarize"] == "static"
    assert len(out["stretches"]) == 2
    assert all(s["wall_ms_per_batch"] > 0 and s["cpu_ms_per_batch"] > 0
               for s in out["stretches"])


def test_speed_history_refuses_others_that_are_not_contenders_and_a_negative_lockstep():
    script = os.path.join(ROOT, "benchmarks", "speed_history.py")
    for argv, message in ((["--others", "tfp_layers"], "--others: ['tfp_layers'] are not"),
                          (["--others", "nope"], "--others: ['nope'] are not"),
                          (["--lockstep", "-1"], "--lockstep must be 0 (off)")):
        proc = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.slow
def test_weights_check_times_both_checks_beside_a_call(tmp_path):
    from benchmarks.common import RESULT_PREFIX
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "weights_check.py"), "--rounds", "2",
         "--checks", "2", "--calls", "1"],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)][-1]
    out = json.loads(line[len(RESULT_PREFIX):])
    assert out["rounds"] == 2
    assert all(out[k] > 0 for k in ("call_16_steps_ms", "eager_check_ms", "traced_check_ms",
                                     "eager_share_of_call", "traced_share_of_call"))
