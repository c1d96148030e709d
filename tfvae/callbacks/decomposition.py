"""The rate decomposition (`tfvae.evaluation.elbo_decomposition`) logged every epoch, and
the train-app hook that adds it to every model it trains."""

import logging

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfk
from tfvae.callbacks.hooks import register_callback
from tfvae.evaluation.decomposition import KEYS, collect_images, describe_estimator, \
    elbo_decomposition

log = logging.getLogger(__name__)


class DecompositionCallback(tfk.callbacks.Callback):
    """Logs the decomposition and the active units to TensorBoard after every epoch.

    Scalars `decomposition/{mi, tc, dim_kl, aggregate_kl, kl, active_units,
    gaussian_kl_bound}` (step = epoch) go to `writer`, or to a writer of its own at
    `log_dir`; if `add_to_logs`, they also go into the epoch's `logs` as
    `decomposition_<key>`, so History and CSV loggers (and Keras' TensorBoard callback, if it
    runs after this one) see them. Non-finite values (the MI of a point mass) are skipped.
    The estimator used is logged once (with its minibatch size, if not exact), and each
    estimate that falls below 0 (see `elbo_decomposition`'s "flags") is warned about the
    first time it does. If the model cannot be decomposed, the callback warns once and
    stops.

    Args:
        data: images or a dataset (usually the validation split).
        writer: a `tf.summary` writer to write to. Default value: None.
        log_dir: if no `writer`, the directory of a writer of its own; None writes no
            events. Default value: None.
        num_examples: examples of `data` to use. Default value: 2000.
        every: compute every `every` epochs. Default value: 1.
        add_to_logs: also put the values in `logs`. Default value: True.
        log_prefix: the prefix of their names in `logs`. Default value: "decomposition_".
        **kwargs: passed to `elbo_decomposition` (method, estimator, batch_size, k, seed).
    """

    def __init__(self, data, writer=None, log_dir=None, num_examples=2000, every=1,
                 add_to_logs=True, log_prefix="decomposition_", **kwargs):
        super().__init__()
        self.images = collect_images(data, num_examples)
        self.log_dir = log_dir
        self.every = validation.positive_int(every, "every")
        self.add_to_logs = bool(add_to_logs)
        self.log_prefix = str(log_prefix)
        self.kwargs = kwargs
        self.last = None
        self._writer = writer
        self._owns_writer = False
        self._disabled = False
        self._flagged = set()

    def _get_writer(self):
        if self._writer is None and self.log_dir is not None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
            self._owns_writer = True
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        if self._disabled or (epoch + 1) % self.every:
            return
        try:
            values = elbo_decomposition(self.model, self.images, **self.kwargs)
        except (TypeError, ValueError, NotImplementedError) as e:
            log.warning("Decomposition disabled for model %r: %s", self.model.name, e)
            self._disabled = True
            return
        if self.last is None:
            log.info("Decomposition of %d examples: %s", values["num_examples"],
                     describe_estimator(values))
        self.last = values
        for flag in values.get("flags", ()):
            key = flag.split()[0]
            if key not in self._flagged:
                self._flagged.add(key)
                log.warning("Epoch %d, decomposition: %s", epoch + 1, flag)
        scalars = {key: float(values[key]) for key in KEYS
                   if key in values and np.isfinite(values[key])}
        writer = self._get_writer()
        if writer is not None:
            with writer.as_default(step=epoch):
                for key, value in scalars.items():
                    tf.summary.scalar(f"decomposition/{key}", value)
            writer.flush()
        if self.add_to_logs and logs is not None:
            logs.update({self.log_prefix + key: value for key, value in scalars.items()})

    def on_train_end(self, logs=None):
        if self._owns_writer and self._writer is not None:
            self._writer.close()
            self._writer = None
            self._owns_writer = False


@register_callback("elbo_decomposition")
def _train_app_callback(context):
    """The train app's hook: every model it trains logs its decomposition each epoch.

    On the app's fixed validation images (up to 1000), as `val_decomposition_<key>` in the
    epoch's logs: validation diagnostics, which the app's `EpochScalarsCallback` writes to
    the `validation` TensorBoard run in their own section. Models that cannot be decomposed
    warn once and go on.
    """
    return DecompositionCallback(context.images, num_examples=None,
                                 log_prefix="val_decomposition_")
