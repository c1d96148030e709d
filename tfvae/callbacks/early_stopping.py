"""Early stopping on the validation ELBO, with the best epoch's weights kept in the checkpoint.

Keras' `EarlyStopping(restore_best_weights=True)` holds the best weights in Python memory, so
a run killed after its best epoch would resume without them. Here the record (best value,
its epoch, epochs without improvement, whether the run stopped) and a copy of the best
weights are variables of one `tf.Module` that the train app puts in the run's checkpoint:
a resumed run continues the same count and ends with the same weights as an uninterrupted
one. The monitored value is `val_elbo` (higher is better) for models with an ELBO and
`val_loss` (lower is better) otherwise.
"""

import math

from tfvae._tf import tf, tfk


class EarlyStoppingState(tf.Module):
    """What early stopping must remember across a restart, as checkpointable variables."""

    def __init__(self, model):
        super().__init__(name="early_stopping")
        guard = getattr(model, "step_guard", None)
        skip = {v.ref() for v in (guard.variables if guard is not None else ())}
        self._watched = [v for v in model.weights
                         if v.dtype.is_floating and v.ref() not in skip]
        self.best_weights = [tf.Variable(v, trainable=False, name="best") for v in self._watched]
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_value")
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")
        self.stopped = tf.Variable(False, trainable=False, name="stopped")

    def keep(self, value, epoch):
        """Records `value` (higher is better) at 1-based `epoch` and copies the weights."""
        self.best.assign(value)
        self.best_epoch.assign(epoch)
        self.wait.assign(0)
        for copy, v in zip(self.best_weights, self._watched):
            copy.assign(v)

    def restore_best(self):
        """Puts the best epoch's weights back into the model; False if none was recorded."""
        if int(self.best_epoch.numpy()) == 0:
            return False
        for copy, v in zip(self.best_weights, self._watched):
            v.assign(copy)
        return True


class EarlyStopping(tfk.callbacks.Callback):
    """Stops `fit` after `patience` epochs without a better validation value.

    Put it after every callback that adds to the epoch's logs and before the checkpoint
    callback, so the saved checkpoint holds this epoch's record.
    """

    def __init__(self, state, patience, monitor="val_elbo"):
        super().__init__()
        if monitor not in ("val_elbo", "val_loss"):
            raise ValueError(f"`monitor` must be 'val_elbo' or 'val_loss'; got {monitor!r}.")
        self.state, self.patience, self.monitor = state, patience, monitor

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise ValueError(f"early stopping needs {self.monitor!r} in the epoch's logs "
                             "(fit with validation_data).")
        value = float(logs[self.monitor])
        value = value if self.monitor == "val_elbo" else -value
        state = self.state
        if math.isfinite(value) and value > float(state.best.numpy()):
            state.keep(value, epoch + 1)
        else:
            state.wait.assign_add(1)
        if int(state.wait.numpy()) >= self.patience:
            state.stopped.assign(True)
            self.model.stop_training = True
