"""TensorBoard servers launched by the apps answer on 127.0.0.1 with the run's data.

Real HTTP requests to TensorBoard's JSON API (`/data/runs`, `/data/plugin/scalars/tags`,
`/data/plugin/images/tags`, ...), loopback only, each loop bounded in time.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from tfvae._tf import tf
from tfvae.apps import tensorboard as tensorboard_app

ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
       "PYTHONUNBUFFERED": "1"}


class _Lines:
    """A subprocess's stdout lines, read by a thread, so waits can time out."""

    def __init__(self, proc):
        self.proc, self.lines, self._queue = proc, [], queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, fragment, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no stdout line with {fragment!r}; got {self.lines[-30:]}")


def _get_json(url, timeout=10):
    assert urllib.parse.urlparse(url).hostname == "127.0.0.1"  # loopback only
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read().decode())


def _poll(url, ready, timeout=90):
    """GETs `url` every 0.5 s until `ready(json)`; returns that json."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = _get_json(url)
            if ready(last):
                return last
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready in {timeout}s; last answer: {last!r}")


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_train_app_serves_its_runs_on_loopback(tmp_path):
    cmd = [sys.executable, "-m", "tfvae.apps.train", "--dataset", "synthetic", "--epochs", "2",
           "--latent-dim", "2", "--hidden-units", "16", "--batch-size", "64",
           "--steps-per-epoch", "3", "--test-limit", "64", "--no-jit", "--no-export",
           "--verbose", "0", "--logdir", str(tmp_path / "runs"), "--export-dir",
           str(tmp_path / "saved"), "--run-name", "served", "--tensorboard"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=ENV)
    try:
        out = _Lines(proc)
        url = out.wait_for("TensorBoard: http://", 180).split("TensorBoard: ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        # After training the app keeps serving until Ctrl-C.
        out.wait_for("TensorBoard is still serving", 240)
        assert proc.poll() is None
        base = url.rstrip("/")
        runs = _poll(base + "/data/runs",
                     lambda r: {"served/train", "served/validation"} <= set(r))
        assert "served" in runs  # the hparams/projector run
        tags = _poll(base + "/data/plugin/scalars/tags",
                     lambda t: "1_objective/elbo" in t.get("served/validation", {}))
        for run in ("served/train", "served/validation"):
            assert {"1_objective/loss", "1_objective/elbo", "1_objective/reconstruction",
                    "1_objective/kl"} <= set(tags[run])
        query = urllib.parse.urlencode({"run": "served/validation", "tag": "1_objective/elbo"})
        # [wall_time, step, value] per epoch, once TensorBoard's reload has seen epoch 2.
        points = _poll(f"{base}/data/plugin/scalars/scalars?{query}", lambda p: len(p) >= 2)
        assert [p[1] for p in points] == [0, 1]
        images = _poll(base + "/data/plugin/images/tags",
                       lambda t: "images/latent_traversal" in t.get("served/validation", {}))
        assert {"images/reconstructions", "images/prior_samples"} <= set(
            images["served/validation"])
        plugins = _get_json(base + "/data/plugins_listing")
        assert plugins["hparams"]["enabled"] and plugins["histograms"]["enabled"]
        # The projector plugin finds runs on its own schedule (a thread that walks the
        # logdir): wait for it rather than race it.
        assert _poll(base + "/data/plugin/projector/runs", lambda r: r == ["served"]) == [
            "served"]
        # The plugin fills in the tensor's shape once it has read the file: poll for it.
        info = _poll(base + "/data/plugin/projector/info?run=served",
                     lambda i: "tensorShape" in (i.get("embeddings") or [{}])[0])
        assert info["embeddings"][0]["tensorShape"] == [204, 2]  # validation latents, labelled
        assert info["embeddings"][0]["metadataPath"] == "projector/metadata.tsv"
        request = urllib.request.Request(
            base + "/data/plugin/hparams/experiment", method="POST",
            data=json.dumps({"experimentName": ""}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            experiment = json.loads(response.read().decode())
        hparams = {h["name"]: h for h in experiment["hparamInfos"]}
        assert hparams["latent_dim"]["domainInterval"]["minValue"] == 2
        assert hparams["model"]["domainDiscrete"] == ["vae"]
    finally:
        _stop(proc)
    assert proc.returncode == 0  # Ctrl-C after training is the normal way out


def test_standalone_app_serves_a_logdir(tmp_path, capsys):
    writer = tf.summary.create_file_writer(str(tmp_path / "runs" / "solo"))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("metric", step * 0.5, step=step)
    writer.close()
    proc = subprocess.Popen([sys.executable, "-m", "tfvae.apps.tensorboard", "--logdir",
                             str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV)
    try:
        line = _Lines(proc).wait_for("TensorBoard serving", 120)
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        tags = _poll(url.rstrip("/") + "/data/plugin/scalars/tags",
                     lambda t: "metric" in t.get("solo", {}))
        assert list(tags) == ["solo"]
    finally:
        _stop(proc)
    assert proc.returncode == 0

    # Bad input: one line, exit 2.
    capsys.readouterr()
    assert tensorboard_app.main(["--logdir", str(tmp_path / "missing")]) == 2
    assert tensorboard_app.main(["--logdir", str(tmp_path), "--port", "70000"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "is not a directory" in err[0] and "`--port`" in err[1]


def test_free_port_is_bindable_on_loopback():
    import socket
    port = tensorboard_app.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
    assert 0 < port < 65536
