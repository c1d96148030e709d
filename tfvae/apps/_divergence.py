"""Stops training at the first non-finite loss, before anything is saved from it.

Keras' training logs are running means over the epoch, so one NaN or Inf step makes the
reported loss non-finite for the rest of the epoch: checking the logs once per call into
the compiled step loop (every `steps_per_execution` steps) misses no divergence. A step
whose loss was finite can still leave non-finite weights (a huge learning rate), so the
weights and optimizer moments are checked too (one reduction, cheap beside a step). It
raises `Diverged` from inside `fit`, which ends training before validation, the epoch-end
summaries and the checkpoint run on the diverged weights; the train app turns it into one
line and exit code 2. `tfvae.callbacks.CheckpointCallback` independently refuses to save
non-finite weights, and `tfvae.export.save` to export them.
"""

import math

from tfvae._tf import tfk
from tfvae.callbacks.checkpoint import weights_finite


class Diverged(Exception):
    """Training produced a non-finite loss at an optimizer step in first..step (the logs of
    the steps in between were not seen: they run in one call of the compiled loop)."""

    def __init__(self, step, values, first=None):
        self.step = step
        self.first = step if first is None else first
        self.values = dict(values)  # the non-finite logs, name -> float
        what = ", ".join(f"{k} {v}" for k, v in self.values.items())
        when = f"step {step}" if self.first >= step else \
            f"a step in {self.first}..{step}"
        super().__init__(f"training diverged at {when} ({what})")


class DivergenceGuard(tfk.callbacks.Callback):
    """Raises `Diverged` when a training log (loss, a term, the ELBO) is NaN or infinite.

    Put it first in the callback list, so no other epoch-end callback sees the weights.
    """

    def __init__(self):
        super().__init__()
        self._supports_tf_logs = True  # converts only the values it checks
        self._checked = 0  # the last optimizer step whose logs were finite

    def on_train_begin(self, logs=None):
        self._checked = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs)

    def _check(self, logs):
        step = int(self.model.optimizer.iterations.numpy())
        bad = {} if weights_finite(self.model) else {"weights": math.nan}
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                bad[key] = value
        if bad:
            # "loss" first: it is the one that moves the weights
            bad = dict(sorted(bad.items(),
                              key=lambda kv: (kv[0] != "loss", kv[0] == "weights")))
            raise Diverged(step, bad, first=self._checked + 1)
        self._checked = step
