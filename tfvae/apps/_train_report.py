"""The train app's report: the wall time of each epoch, and the closing lines."""

import math
import time

import numpy as np

from tfvae._tf import tfk


class EpochTimer(tfk.callbacks.Callback):
    """Wall time of each epoch's training steps (validation excluded), for images/s.

    No batch hooks: the clock stops when validation begins (or at the epoch end).
    """

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def _stop(self):
        if self._t0 is not None:
            self.seconds.append(time.perf_counter() - self._t0)
            self._t0 = None


def summary(cfg, result):
    """The closing lines: test metrics, speed, where everything went."""
    m = result.metrics
    lines = ["", f"Done: run {result.run_name!r}, {result.iterations} optimizer steps."]
    if "elbo" in m:
        pixels = math.prod(result.data.image_shape)
        extra = ""
        if result.model.likelihood.registry_name == "bernoulli" and result.data.binarize:
            extra = f" ({-m['elbo'] / (pixels * math.log(2)):.4f} bits/dim)"
        lines.append(f"Test ELBO: {m['elbo']:.2f} nats per image{extra}; "
                     + ", ".join(f"{k} {v:.2f}" for k, v in m.items() if k != "elbo"))
    else:
        lines.append("Test metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
    if result.epoch_seconds:
        steady = result.epoch_seconds[1:] or result.epoch_seconds
        per_epoch = min(result.data.steps_per_epoch * cfg.batch_size, result.data.num_train)
        n = len(result.epoch_seconds)
        which = "median epoch after the first" if n > 1 else \
            "one epoch, including the step's compilation"
        lines.append(f"Training: {n} epoch{'s' if n > 1 else ''} in "
                     f"{result.train_seconds:.1f} s, {per_epoch / float(np.median(steady)):.0f} "
                     f"images/s ({which})")
    lines += [f"TensorBoard logs: {result.run_dir}  (python -m tfvae.apps.tensorboard "
              f"--logdir {cfg.logdir})",
              f"Checkpoints: {result.manager.directory}"]
    if result.export_path:
        lines.append(f"SavedModel: {result.export_path}  (python -m tfvae.apps.sample --model "
                     f"{result.export_path} --num 64 --out samples.png)")
    else:
        lines.append("SavedModel: not written (--no-export)")
    return "\n".join(lines)
