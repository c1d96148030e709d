"""Checkpoints of a run at epoch ends and every N optimizer steps, for exact resumption."""

from tfvae._tf import tf, tfk


@tf.function(autograph=False, reduce_retracing=True)
def _variables_finite(variables):
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v)) for v in variables]))


def weights_finite(model):
    """True if no floating-point variable of `model` or of its optimizer (Adam's moments)
    holds a NaN or an infinity. One traced function over all of them: op by op, eagerly, it
    took as long as a whole training step of the main job (benchmarks/README.md)."""
    optimizer = getattr(model, "optimizer", None)
    variables = list(model.variables) + list(getattr(optimizer, "variables", None) or [])
    variables = [v for v in variables if v.dtype.is_floating]
    return bool(_variables_finite(variables).numpy()) if variables else True


class CheckpointCallback(tfk.callbacks.Callback):
    """Saves the run's checkpoint at every epoch end and every `every_steps` steps.

    The checkpoint (model, optimizer, the model's tf.random.Generator, epoch and step
    counters) records `epoch` (the epoch in progress, or the next one after an epoch end)
    and `step_in_epoch` (steps of it already trained), so a resumed run trains exactly the
    remaining steps. Checkpoints are numbered by the optimizer step. Weights with a NaN or
    an infinity are never saved (`refused` records the step), so the latest checkpoint of a
    diverged run is its last finite one.

    Args:
        manager: a tf.train.CheckpointManager of a checkpoint holding `epoch_var` and
            `step_var` (int64 variables) and the model and its optimizer.
        every_steps: also save when optimizer.iterations is a multiple of this. None: off.
        steps_per_epoch: steps of a full epoch.
    """

    def __init__(self, manager, epoch_var, step_var, every_steps, steps_per_epoch):
        super().__init__()
        self.manager = manager
        self.epoch_var = epoch_var
        self.step_var = step_var
        self.every_steps = every_steps
        self.steps_per_epoch = steps_per_epoch
        self.first_step = 0  # steps of the current epoch trained before this fit() began
        self._epoch = 0
        self._last_step = 0
        self.refused = None  # the optimizer step of a save refused for non-finite weights
        self._supports_tf_logs = True  # never needs the logs as NumPy

    def _implements_train_batch_hooks(self):
        # Keras syncs every step for batch hooks; only ask for them when they do something.
        return bool(self.every_steps)

    def on_train_begin(self, logs=None):
        self._last_step = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not self.every_steps:
            return
        step = int(self.model.optimizer.iterations.numpy())
        in_epoch = self.first_step + batch + 1
        # With steps_per_execution > 1 this runs every few steps, so save when a multiple
        # of every_steps was passed since the last call, not only when one is hit.
        passed = step // self.every_steps > self._last_step // self.every_steps
        self._last_step = step
        # An epoch's last step is saved by on_epoch_end, with the epoch counter advanced.
        if passed and in_epoch < self.steps_per_epoch:
            self.save(self._epoch, in_epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        self.first_step = 0
        self.save(epoch + 1, 0, int(self.model.optimizer.iterations.numpy()))

    def save(self, epoch, in_epoch, step):
        if not weights_finite(self.model):
            self.refused = step
            return
        self.epoch_var.assign(epoch)
        self.step_var.assign(in_epoch)
        self.manager.save(checkpoint_number=step)
