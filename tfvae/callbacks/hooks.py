"""How callbacks reach the train app without editing it: the factory registry, the context
every factory receives, and the function that collects what models and factories add.

Two hooks, both given a `CallbackContext` (model, data, writers, run directory):

1. A model class may define ``extra_callbacks(self, context) -> list[Callback]``; the train
   app adds what it returns when it trains that model.
2. A module may register a factory for every model::

       from tfvae import callbacks

       @callbacks.register_callback("elbo_decomposition")
       def _decomposition(context):
           if not context.model.has_density:
               return None            # None or [] opts out for this model
           return MyCallback(context)

   Factories run in name order. The module must be imported before the train app builds
   its callbacks: `tfvae.callbacks` imports the built-in ones (`tfvae/callbacks/__init__.py`);
   a user module is imported by whoever registers it. Write scalars with
   ``with context.writer("validation").as_default(step=epoch):`` so they appear beside the
   epoch metrics.
"""

import dataclasses
import os
from typing import Any

import numpy as np

from tfvae._tf import tf, tfk
from tfvae.registry import Registry

#: factories `fn(context) -> Callback | list[Callback] | None`, applied to every model.
EXTRA_CALLBACKS = Registry("callback")


def register_callback(name):
    """Decorator: registers `fn(context) -> Callback | list | None` under `name`."""
    return EXTRA_CALLBACKS.register(name)


@dataclasses.dataclass
class CallbackContext:
    """What the train app hands to callback factories and `model.extra_callbacks`.

    Attributes:
        model: the model being trained (compiled).
        config: the resolved run configuration, a JSON-able dict.
        run_dir: the run directory (TensorBoard run root and checkpoints).
        train_data: the training tf.data.Dataset of one epoch (images [B, H, W, C]).
        validation_data: the validation tf.data.Dataset (images [B, H, W, C]).
        images: up to 1000 fixed test images, float32 [N, H, W, C] in [0, 1].
        labels: their labels, int64 [N] (or None).
        dataset_size: number of training examples (minibatch estimators need it).
        steps_per_epoch: optimizer steps per epoch.
        label_names: display names of the label values, or None.
    """

    model: Any
    config: dict
    run_dir: str
    train_data: Any
    validation_data: Any
    images: np.ndarray
    labels: Any
    dataset_size: int
    steps_per_epoch: int
    label_names: Any = None
    _writers: dict = dataclasses.field(default_factory=dict, repr=False)

    def writer(self, name="validation"):
        """The tf.summary writer of TensorBoard sub-run `name` ("train" or "validation")."""
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.run_dir, name))
        return self._writers[name]

    def close(self):
        for w in self._writers.values():
            w.close()


def extra_callbacks(model, context):
    """The callbacks the model's `extra_callbacks` hook and the registered factories add."""
    out = []
    hook = getattr(model, "extra_callbacks", None)
    if callable(hook):
        out.extend(_as_list(hook(context)))
    for name in EXTRA_CALLBACKS.names():
        out.extend(_as_list(EXTRA_CALLBACKS.get(name)(context)))
    for cb in out:
        if not isinstance(cb, tfk.callbacks.Callback):
            raise TypeError(f"Extra callbacks must be tf_keras Callbacks; got "
                            f"{type(cb).__name__}.")
    return out


def _as_list(value):
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
