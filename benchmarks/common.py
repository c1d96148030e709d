"""Shared pieces of the side-by-side benchmark: the data file, timing, the reference
IWAE loop, and the one-line JSON result every contender prints.

Kept free of tfvae and of any Keras import, so the Keras 3 baseline can use it.
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

from benchmarks._lockstep import TURNS

RESULT_PREFIX = "BENCHMARK_RESULT "


def baseline_args(argv=None):
    """The command line every baseline takes (run.py passes the same flags to each)."""
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True, help="the .npz that run.py writes")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_npz(path):
    """x_train [N, 28, 28, 1], x_test [M, 28, 28, 1] as float32 in {0, 1}."""
    with np.load(path) as f:
        return f["x_train"].astype(np.float32), f["x_test"].astype(np.float32)


def epoch_timer(callback_base):
    """A Keras callback (for tf_keras or Keras 3) recording epoch wall times and the steps of
    an epoch. Under a lockstep coordinator (`_lockstep`) it also takes turns between chunks of
    training steps; otherwise it has no batch hooks, which Keras would call every step."""

    class EpochTimer(callback_base):
        def __init__(self):
            super().__init__()
            self.times, self.steps = [], None
            self._supports_tf_logs = True  # tf_keras: no host copy of the logs per call

        def on_train_begin(self, logs=None):
            self.steps = self.params.get("steps")

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)
            TURNS.epoch_end()

        def on_test_begin(self, logs=None):  # the epoch's validation, if any
            TURNS.epoch_end()

    class LockstepTimer(EpochTimer):
        def on_train_batch_begin(self, batch, logs=None):
            self._first = batch
            TURNS.steps_begin()

        def on_train_batch_end(self, batch, logs=None):  # tf_keras: the call's last step
            TURNS.steps_end(batch - self._first + 1)

    return LockstepTimer() if TURNS.active else EpochTimer()


def steady_images_per_s(times, n_train):
    """Training images/s of the median epoch after the first (the first one compiles)."""
    steady = times[1:] or times
    return n_train / float(np.median(steady))


def straightforward_iwae(tf, log_weight_fn, x, num_samples, batch_size=100):
    """The reference: an eager Python loop over samples, one batch of images at a time.

    Args:
        tf: the tensorflow module.
        log_weight_fn: xb -> a function of nothing returning one sample's log-weights [B]
            (it samples z ~ q(z|xb) itself): log p(xb|z) + log p(z) - log q(z|xb).
        x: images [N, 28, 28, 1].

    Returns:
        [N] log p(x) estimates in nats.
    """
    out = []
    for start in range(0, len(x), batch_size):
        one_sample = log_weight_fn(x[start:start + batch_size])
        log_w = [one_sample() for _ in range(num_samples)]
        out.append(tf.reduce_logsumexp(tf.stack(log_w), 0) - np.log(num_samples))
    return np.concatenate([o.numpy() for o in out])


def score_baseline(tf, contender, one_sample_log_w, x_train, x_test, timer, args):
    """Test -ELBO (one sample, whole test set), NLL by the straightforward loop, report."""
    elbo = straightforward_iwae(tf, one_sample_log_w, x_test, 1, batch_size=1000)
    x_eval = x_test[:args.nll_examples]
    t0 = time.perf_counter()
    log_px = straightforward_iwae(tf, one_sample_log_w, x_eval, args.nll_samples)
    eval_s = time.perf_counter() - t0
    report(contender=contender,
           train_images_per_s=steady_images_per_s(timer.times, len(x_train)),
           epoch_s=[round(t, 2) for t in timer.times],
           test_neg_elbo=float(-elbo.mean()), test_nll=float(-log_px.mean()),
           eval_images_per_s=len(x_eval) / eval_s,
           eval_method="straightforward loop over samples",
           images_per_step=len(x_train) / timer.steps if timer.steps else None)


def append_row(out_dir, row, stream=sys.stdout):
    """Appends one table row to `out_dir`/results.jsonl as soon as it exists (a long run cut
    short keeps its rows) and echoes it to `stream`."""
    with open(os.path.join(out_dir, "results.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), file=stream, flush=True)


def write_table(out_dir, text):
    """Writes the finished table to `out_dir`/table.md and prints it."""
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def status_mb(*keys):
    """Fields of /proc/self/status (VmRSS, VmHWM, RssAnon, ...) in MB (MiB), exact (the
    kernel's counters)."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                fields[key] = int(value.split()[0]) / 1024
    return tuple(fields[k] for k in keys)


def peak_rss_mb():
    """This process's peak resident set size in MB (MiB): VmHWM, the high-water mark of the
    address space it has had since its exec, exact.

    Not getrusage's ru_maxrss: Linux carries that across exec from the process that forked
    (for a vfork, the parent's own peak), so a contender spawned by run.py, which holds
    TensorFlow and the data set, read at least run.py's peak (~760 MB) whatever it used."""
    try:
        return status_mb("VmHWM")[0]
    except (OSError, KeyError):  # no procfs: the rusage figure, with the caveat above
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(**fields):
    """Prints the result line: `fields`, the peak RSS and, under a lockstep coordinator, the
    chunks of training steps (`fields` should then carry `images_per_step`)."""
    fields["peak_rss_mb"] = peak_rss_mb()
    if TURNS.active:
        fields["lockstep_chunks"] = TURNS.chunks
    print(RESULT_PREFIX + json.dumps(fields), flush=True)


def run_script(argv, env=None):
    """Runs `python *argv` in a fresh process (its own XLA flags, its own peak RSS), prints
    its last result line and returns that line's fields. Raises CalledProcessError if the
    process fails."""
    import subprocess  # noqa: PLC0415
    out = subprocess.run([sys.executable, *argv], env=env, check=True, capture_output=True,
                         text=True).stdout
    line = [s for s in out.splitlines() if s.startswith(RESULT_PREFIX)][-1]
    print(line, flush=True)
    return json.loads(line[len(RESULT_PREFIX):])
