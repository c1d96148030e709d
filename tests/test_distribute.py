"""tf.distribute: mirrored replicas train the same weights as one device (the loss is the
global per-example mean), two local workers train, checkpoint, resume after a kill and
export once, and the apps refuse what TensorFlow cannot run."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tfvae.apps import train as train_app

ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
       "PYTHONUNBUFFERED": "1"}
ENV.pop("TF_CONFIG", None)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One process (logical devices exist only if configured before TensorFlow starts): the same
# initial weights and the same 4 batches of 32, trained by the default strategy, by
# MirroredStrategy over 2 logical CPUs, and by MirroredStrategy with the replica share
# switched off (each replica's batch mean, as before: an N-times gradient). Plain SGD, since
# Adam's update is nearly invariant to the gradient's scale and would hide that bug. The
# posterior starts with scale 2e-5, so the replicas' own noise (a different draw from the
# default strategy's) barely moves the weights: seeds 0, 1, 2 gave 1.9e-4, 2.0e-4 and 3.1e-4
# of the 4 steps' move, the tolerance is 1e-3 (the test runs seed 0).
MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np
    from tfvae import distribute
    from tfvae._tf import tf, tfk
    mirrored = distribute.make_strategy("mirrored", devices=2)
    import tfvae
    tfk.utils.set_random_seed(int(sys.argv[1]))
    x = (np.random.default_rng(0).random((128, 28, 28, 1)) < 0.3).astype(np.float32)
    init = None

    def train(strategy):
        global init
        with strategy.scope():
            m = tfvae.VAE(latent_dim=4, hidden_units=(16,), seed=1, posterior={
                "name": "full_covariance", "init_scale": 2e-5})
            m.compile(optimizer=tfk.optimizers.SGD(0.01), jit_compile=False)
        if init is None:
            init = [v.numpy() for v in m.trainable_variables]
        for v, value in zip(m.trainable_variables, init):
            v.assign(value)
        logs = m.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0).history
        return [v.numpy() for v in m.trainable_variables], logs["loss"][0]

    single, loss1 = train(tf.distribute.get_strategy())
    replicated, loss2 = train(mirrored)
    distribute.replica_share = lambda loss, batch_size: loss   # the bug
    unscaled, _ = train(mirrored)
    with mirrored.scope():  # the default jit_compile="auto" falls back on logical CPUs
        auto = tfvae.VAE(latent_dim=4, hidden_units=(16,))
        auto.compile(optimizer=tfk.optimizers.SGD(0.01))
    diff = lambda a: max(float(np.max(np.abs(p - q))) for p, q in zip(a, single))
    moved = max(float(np.max(np.abs(p - q))) for p, q in zip(single, init))
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "moved": moved,
                      "mirrored": diff(replicated), "unscaled": diff(unscaled),
                      "loss_single": loss1, "loss_mirrored": loss2,
                      "auto_jit": auto._jit_compile}))
""")


@pytest.mark.slow
def test_mirrored_two_devices_match_one_device():
    proc = subprocess.run([sys.executable, "-c", MIRRORED, "0"], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["replicas"] == 2
    assert r["auto_jit"] is False, r
    # The weights moved by `moved` in 4 steps; two replicas land within 1e-3 of that move
    # of the one-device weights (float32 sums in another order, and the 2e-5-scale noise).
    assert r["mirrored"] < 1e-3 * r["moved"], r
    # Without the share the gradient doubles: off by about the whole move.
    assert r["unscaled"] > 0.3 * r["moved"], r
    # The reported loss is the global batch mean, reduced once (not a sum over replicas).
    assert abs(r["loss_mirrored"] - r["loss_single"]) < 1e-3 * abs(r["loss_single"]), r


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _launch_workers(argv, ports, tmp):
    """Two train-app processes, worker 0 (the chief) and worker 1, on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**ENV, "TMPDIR": str(tmp), "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        log = open(tmp / f"worker{index}-{len(list(tmp.glob('*.log')))}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "tfvae.apps.train", *argv],
                                      env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return procs


# 2 epochs of 12 global steps of 64 (32 per worker), a checkpoint every 4 steps, 2 steps per
# call (so the checkpoint count is in steps, not calls). No XLA: TensorFlow has no XLA
# collectives on CPU (refused, see below).
WORKER_ARGS = ["--dataset", "synthetic", "--latent-dim", "4", "--hidden-units", "32",
               "--batch-size", "64", "--steps-per-epoch", "12", "--epochs", "2",
               "--test-limit", "128", "--export-iwae-samples", "20", "--no-jit",
               "--verbose", "0", "--strategy", "multi_worker", "--checkpoint-every-steps", "4",
               "--steps-per-execution", "2", "--run-name", "mw"]


@pytest.mark.slow
def test_multi_worker_kill_one_then_resume_both(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = WORKER_ARGS + ["--logdir", str(tmp_path / "runs"),
                          "--export-dir", str(tmp_path / "saved")]
    checkpoints = tmp_path / "runs" / "mw" / "checkpoints"
    procs = _launch_workers(argv, _free_ports(2), temp)
    deadline = time.time() + 400
    while not list(checkpoints.glob("ckpt-*.index")):
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.poll() for p in procs]
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)  # one worker dies mid-run
    procs[1].wait()
    try:  # the chief notices the lost peer (or hangs in an all-reduce): stop it as a
        procs[0].wait(timeout=20)  # scheduler restarting the job would
    except subprocess.TimeoutExpired:
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
    assert not (tmp_path / "saved" / "mw").exists(), "the run finished before the kill"
    first = sorted(int(p.name[5:-6]) for p in checkpoints.glob("ckpt-*.index"))
    assert first and first[-1] < 24 and all(s % 4 == 0 for s in first), first

    procs = _launch_workers(argv, _free_ports(2), temp)  # re-run both: resume
    codes = [p.wait(timeout=400) for p in procs]
    logs = [f.read_text() for f in sorted(temp.glob("worker*-2.log")) +
            sorted(temp.glob("worker*-3.log"))]
    assert codes == [0, 0], logs
    chief_log = (temp / "worker0-2.log").read_text()
    assert f"optimizer step {first[-1]}" in chief_log, chief_log  # resumed, not restarted
    meta = json.loads((tmp_path / "saved" / "mw" / "metadata.json").read_text())
    assert meta["metrics"]["optimizer_steps"] == 24 and meta["metrics"]["epochs"] == 2
    assert sorted(os.listdir(tmp_path / "saved")) == ["mw"]  # one export, by the chief
    assert not list(temp.glob("tfvae-worker-*"))  # the worker's writes were removed
    # The export is the single-device SavedModel: it loads and decodes without tfvae.
    import tensorflow as tf
    loaded = tf.saved_model.load(str(tmp_path / "saved" / "mw"))
    out = loaded.signatures["decode"](z=tf.zeros([2, 4]))
    assert out["mean"].shape == (2, 28, 28, 1)


@pytest.mark.parametrize("argv, words", [
    (["--strategy", "mirrored", "--devices", "2"], "--no-jit"),
    (["--strategy", "multi_worker", "--no-jit"], "TF_CONFIG"),
    (["--devices", "2"], "mirrored"),
])
def test_unsupported_combinations_exit_2(tmp_path, capsys, argv, words):
    code = train_app.main(["--dataset", "synthetic", "--logdir", str(tmp_path / "r"),
                           "--export-dir", str(tmp_path / "s"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r").exists() or not os.listdir(tmp_path / "r")


def test_xla_with_multi_worker_on_cpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    code = train_app.main(["--dataset", "synthetic", "--strategy", "multi_worker",
                           "--logdir", str(tmp_path / "r"), "--export-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "XLA" in err and "--no-jit" in err and len(err.splitlines()) == 1


def test_compile_defaults_to_xla_and_falls_back_with_a_reason(caplog, monkeypatch):
    import tfvae
    from tfvae._tf import tfk
    model = tfvae.VAE(latent_dim=4, hidden_units=(16,))
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    assert model._jit_compile is True  # noqa: SLF001
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=False)
    assert model._jit_compile is False  # noqa: SLF001  (an explicit choice is kept)
    monkeypatch.setattr(type(model.posterior), "supports_xla", False, raising=False)
    monkeypatch.setattr(type(model.posterior), "xla_reason", "a test reason", raising=False)
    with caplog.at_level("WARNING", logger="tfvae"):
        model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    assert model._jit_compile is False  # noqa: SLF001
    assert "a test reason" in caplog.text and "without XLA" in caplog.text


def test_compile_auto_keeps_convolutions_off_xla_on_cpu(caplog):
    # XLA's CPU convolutions trained the conv VAE at 0.4-0.7x the graph step's speed.
    import tfvae
    from tfvae._tf import tf, tfk
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("the rule is for hosts without a GPU")
    model = tfvae.VAE(latent_dim=4, input_shape=(28, 28, 1), architecture="conv")
    with caplog.at_level("INFO", logger="tfvae"):
        model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    assert model._jit_compile is False  # noqa: SLF001
    assert "convolutions" in caplog.text
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=True)
    assert model._jit_compile is True  # noqa: SLF001  (an explicit choice is kept)
