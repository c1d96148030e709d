"""Stops training when steps keep going non-finite, before anything is saved from them.

The train step (`tfvae.models._guarded`) skips any optimizer step whose loss or gradient is
NaN or infinite, leaving the weights and Adam's moments as they were, and keeps the record
in `model.step_guard`. This callback reads that record once per call into the compiled step
loop (every `steps_per_execution` steps; the record latches the longest run of skipped
steps, so none is missed in between): an isolated skipped step gets one warning line on
stderr and training goes on; `MAX_CONSECUTIVE_SKIPPED` in a row, or a run that ends on a
skipped step (checked at the last epoch's end), raise `Diverged`. Values
the guarded step does not cover (a critic's loss, the weights themselves) are checked too:
any non-finite training log or weight raises `Diverged`. The weights are checked at each
epoch's end and at the end of training, and also at every call for a model whose train step
is not guarded (`guards_steps` false): in a guarded one a non-finite weight makes the next
steps' losses non-finite, so they are skipped and the streak stops training, and reading
every weight and both of Adam's moments at every call cost the main job several percent of
its speed (benchmarks/README.md). It raises from inside `fit`, which
ends training before validation, the epoch-end summaries and the checkpoint run; the train
app turns it into one line and exit code 2. `tfvae.callbacks.CheckpointCallback`
independently refuses to save non-finite weights, and `tfvae.export.save` to export them.
"""

import math
import sys

from tfvae._tf import tfk
from tfvae.callbacks.checkpoint import weights_finite

#: consecutive skipped steps (non-finite loss or gradient) after which training stops
MAX_CONSECUTIVE_SKIPPED = 5


class Diverged(Exception):
    """Training produced a non-finite loss at an optimizer step in first..step (the logs of
    the steps in between were not seen: they run in one call of the compiled loop)."""

    def __init__(self, step, values, first=None, skipped=0):
        self.step = step
        self.first = step if first is None else first
        self.values = dict(values)  # the non-finite logs, name -> float
        self.skipped = skipped
        what = ", ".join(f"{k} {v}" for k, v in self.values.items())
        when = f"step {step}" if self.first >= step else \
            f"a step in {self.first}..{step}"
        if skipped:
            what = (f"{skipped} optimizer step(s) in a row skipped with {what}; the weights "
                    "are those before them")
        super().__init__(f"training diverged at {when} ({what})")


class DivergenceGuard(tfk.callbacks.Callback):
    """Raises `Diverged` when a training log (loss, a term, the ELBO) is NaN or infinite.

    Put it first in the callback list, so no other epoch-end callback sees the weights.
    """

    def __init__(self, max_skipped=MAX_CONSECUTIVE_SKIPPED, err=None):
        super().__init__()
        self._supports_tf_logs = True  # converts only the values it checks
        self._checked = 0  # the last optimizer step whose logs were finite
        self._weights_checked = 0  # the last optimizer step whose weights were finite
        self.max_skipped = max_skipped
        self._err = err or (lambda s: print(s, file=sys.stderr, flush=True))
        self._skipped = 0

    def on_train_begin(self, logs=None):
        self._checked = self._weights_checked = int(self.model.optimizer.iterations.numpy())
        guard = getattr(self.model, "step_guard", None)
        if guard is not None:  # a resumed run counts its own streaks
            guard.longest.assign(guard.streak)
            self._skipped = int(guard.skipped.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, weights=not getattr(self.model, "guards_steps", False))

    def on_epoch_end(self, epoch, logs=None):
        # The last epoch's end is the run's: a run that ends on skipped steps stops here,
        # before the epoch-end callbacks after this one describe its weights.
        self._check(logs, final=epoch + 1 >= (self.params or {}).get("epochs", math.inf))

    def on_train_end(self, logs=None):
        self._check(logs, final=True)

    def _check(self, logs, final=False, weights=True):
        step = int(self.model.optimizer.iterations.numpy())
        bad = {} if not weights or weights_finite(self.model) else {"weights": math.nan}
        for key, value in (logs or {}).items():
            if key.startswith("val_"):
                continue
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(value):
                bad[key] = value
        guard = getattr(self.model, "step_guard", None)
        if guard is not None:
            skipped, longest = int(guard.skipped.numpy()), int(guard.longest.numpy())
            names = guard.bad_names()
            # A run that ends on skipped steps has not recovered, however short the streak.
            streak = int(guard.streak.numpy())
            if longest >= self.max_skipped or (final and streak):
                longest = max(longest, streak)
                bad.update({n: math.nan for n in names or ["loss"]})
                step = int(guard.last_step.numpy()) + 2 - longest  # the streak's first
                raise Diverged(step, _loss_first(bad), skipped=longest)
            if skipped > self._skipped and not streak:  # recovered: say so once
                self._err(f"warning: skipped {skipped - self._skipped} optimizer step(s) with "
                          f"a non-finite {', '.join(names) or 'gradient'} (last at step "
                          f"{int(guard.last_step.numpy()) + 1}); the weights were left "
                          f"unchanged and training went on (it stops after {self.max_skipped} in a row).")
                self._skipped = skipped
        if bad:  # the weights alone: they were last seen finite at their own last check
            last = self._weights_checked if set(bad) == {"weights"} else self._checked
            raise Diverged(step, _loss_first(bad), first=last + 1)
        self._checked = step
        if weights:
            self._weights_checked = step


def _loss_first(bad):
    """"loss" first: it is the one that moves the weights."""
    return dict(sorted(bad.items(), key=lambda kv: (kv[0] != "loss", kv[0] == "weights")))
