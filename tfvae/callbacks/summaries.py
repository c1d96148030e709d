"""Keras callbacks of the train app: TensorBoard summaries, checkpoints, extra-callback hook.

`EpochScalarsCallback` writes every metric of `fit`'s logs each epoch (`epoch_<metric>` in
the run's `train` and `validation` TensorBoard runs). What `SummaryCallback` writes each
epoch (step = epoch index), in `validation`, computed on a fixed set of test images:

```none
images/reconstructions   rows of inputs, each followed by its reconstruction E[x | z = E[z|x]]
images/prior_samples     E[x|z] for fixed z ~ p(z) (the same z every epoch: watch them sharpen)
images/latent_traversal  row d: z_d swept over [-3, 3], the other dims at one test image's
                         posterior mean; rows are the most active dims, by Var_x E[z_d|x]
posterior/mean           histogram of E[z_d|x] over test images and dims
posterior/stddev         histogram of the marginal posterior std devs sqrt(Cov[z|x]_dd)
```
plus the embedding projector (`projector_config.pbtxt` in the run directory: the posterior
means of the test images, labelled, with a sprite of the images).

#### Adding callbacks without editing the train app

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

   Factories run in name order; the module must be imported by
   `import tfvae` (e.g. imported from `tfvae/evaluation/__init__.py`) for the app to see
   it. Write scalars with ``with context.writer("validation").as_default(step=epoch):``
   so they appear beside the epoch metrics.

`CheckpointCallback` saves the `tf.train.Checkpoint` of the run (model, optimizer, the
model's tf.random.Generator, epoch and step counters) at every epoch end and every
`every_steps` optimizer steps.
"""

import dataclasses
import math
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


# ---------------------------------------------------------------------------- images

def image_grid(images, cols=None, pad=1, pad_value=0.5):
    """Tiles images [N, H, W, C] into one image [rows*(H+pad)-pad, cols*(W+pad)-pad, C].

    Missing tiles of the last row are left at `pad_value`; values are clipped to [0, 1].
    """
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    cols = cols or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i]
    return grid


def interleave_rows(inputs, outputs, cols):
    """[N, ...] inputs and outputs -> rows: `cols` inputs, then their `cols` outputs, ..."""
    n = len(inputs)
    tiles = []
    for start in range(0, n, cols):
        a, b = inputs[start:start + cols], outputs[start:start + cols]
        pad = cols - len(a)
        if pad:
            blank = np.full((pad, *a.shape[1:]), 0.5, np.float32)
            a, b = np.concatenate([a, blank]), np.concatenate([b, blank])
        tiles.extend([a, b])
    return np.concatenate(tiles)


def encode_png(image):
    """float [H, W, C] in [0, 1] -> PNG bytes."""
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return tf.io.encode_png(pixels).numpy()


def posterior_moments(model, x, batch_size=250, num_samples=32, seed=0):
    """Posterior means and marginal std devs of each example, ([N, D], [N, D]).

    Exact when q(z|x) has them; estimated from `num_samples` draws otherwise (implicit
    posteriors), so every model gets a histogram.
    """
    means, stds = [], []
    for start in range(0, len(x), batch_size):
        q_z = model.encode(x[start:start + batch_size])
        try:
            mean, std = q_z.mean(), q_z.stddev()
        except (NotImplementedError, TypeError, AttributeError, ValueError):
            z = q_z.sample(num_samples, seed=tf.constant([seed, start], tf.int32))
            mean, std = tf.reduce_mean(z, 0), tf.math.reduce_std(z, 0)
        means.append(np.asarray(mean))
        stds.append(np.asarray(std))
    return np.concatenate(means), np.concatenate(stds)


class SummaryCallback(tfk.callbacks.Callback):
    """Writes images, posterior histograms and the projector embedding every epoch.

    Args:
        context: the `CallbackContext` (its `images`, `labels` and `writer("validation")`).
        num_images: reconstructions shown (two rows per 8). Default value: 16.
        num_samples: prior samples shown. Default value: 64.
        traversal_dims: latent dims shown in the traversal. Default value: 10.
        traversal_steps: values per traversed dim, on [-3, 3]. Default value: 9.
        seed: fixes the prior samples' z. Default value: 0.
    """

    def __init__(self, context, num_images=16, num_samples=64, traversal_dims=10,
                 traversal_steps=9, seed=0):
        super().__init__()
        self.context = context
        self.num_images = min(num_images, len(context.images))
        self.traversal_dims = traversal_dims
        self.traversal_steps = traversal_steps
        latent_dim = context.model.latent_dim
        self.z_prior = np.random.default_rng(seed).standard_normal(
            (num_samples, latent_dim)).astype(np.float32)
        self.projector = ProjectorWriter(context.run_dir, context.images, context.labels,
                                         context.label_names)

    def _decode_mean(self, z):
        return np.asarray(self.context.model.decode(z).mean())

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch)

    def write(self, step):
        model, x = self.context.model, self.context.images
        means, stds = posterior_moments(model, x)
        shown = x[:self.num_images]
        recon = np.asarray(model(shown, training=False))
        with self.context.writer("validation").as_default(step=step):
            tf.summary.image(
                "images/reconstructions",
                image_grid(interleave_rows(shown, recon, 8), cols=8)[None], step=step,
                description="Rows of test inputs, each followed by its reconstruction "
                            "E[x | z = E[z|x]].")
            tf.summary.image(
                "images/prior_samples",
                image_grid(self._decode_mean(self.z_prior))[None], step=step,
                description="E[x|z] for the same z ~ p(z) every epoch.")
            tf.summary.image(
                "images/latent_traversal", self._traversal(means)[None], step=step,
                description=f"Row d: z_d swept over [-3, 3] with the other dims at the first "
                            f"test image's posterior mean; rows are the {self.traversal_dims} "
                            "most active dims (largest Var_x E[z_d|x]), most active first.")
            tf.summary.histogram("posterior/mean", means, step=step,
                                 description="E[z_d|x] over test images and latent dims.")
            tf.summary.histogram("posterior/stddev", stds, step=step,
                                 description="Marginal posterior std devs sqrt(Cov[z|x]_dd).")
        self.context.writer("validation").flush()
        self.projector.write(means)

    def _traversal(self, means):
        activity = np.var(means, axis=0)
        dims = np.argsort(-activity, kind="stable")[:self.traversal_dims]
        values = np.linspace(-3.0, 3.0, self.traversal_steps, dtype=np.float32)
        z = np.repeat(means[:1], len(dims) * len(values), axis=0)
        for row, d in enumerate(dims):
            z[row * len(values):(row + 1) * len(values), d] = values
        return image_grid(self._decode_mean(z), cols=len(values))


class EpochScalarsCallback(tfk.callbacks.Callback):
    """Writes every metric of the epoch's `logs` as a scalar: `epoch_<name>` in the run's
    `train` sub-run, `val_<name>` as `epoch_<name>` in `validation` (Keras' tag names).

    It uses the context's writers, one per directory: TensorBoard's Python loader follows
    one event file per directory at a time, so a second live writer there (Keras' own
    TensorBoard callback beside the image writer) hides one of them from a running
    TensorBoard. Place it after callbacks that add entries to `logs`.
    """

    def __init__(self, context):
        super().__init__()
        self.context = context

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        groups = {"train": {k: v for k, v in logs.items() if not k.startswith("val_")},
                  "validation": {k[4:]: v for k, v in logs.items() if k.startswith("val_")}}
        lr = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if lr is not None and not callable(lr):
            groups["train"].setdefault("learning_rate", lr)
        for name, values in groups.items():
            if not values:
                continue
            writer = self.context.writer(name)
            with writer.as_default(step=epoch):
                for key, value in values.items():
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        continue
                    tf.summary.scalar(f"epoch_{key}", value, step=epoch)
            writer.flush()


class ProjectorWriter:
    """Writes the embedding projector's files into `run_dir` (TensorBoard run `<run>`).

    projector_config.pbtxt points at projector/latents.tsv (the vectors),
    projector/metadata.tsv (labels) and projector/sprite.png (the images).
    """

    def __init__(self, run_dir, images, labels=None, label_names=None):
        self.run_dir = run_dir
        self.directory = os.path.join(run_dir, "projector")
        os.makedirs(self.directory, exist_ok=True)
        self.num = len(images)
        if labels is not None:
            names = [label_names[int(l)] if label_names is not None else str(int(l))
                     for l in labels]
            _atomic_write(os.path.join(self.directory, "metadata.tsv"),
                          "label\tclass\n" + "".join(f"{int(l)}\t{n}\n"
                                                      for l, n in zip(labels, names)))
        self.has_metadata = labels is not None
        h, w = images.shape[1:3]
        # One sprite, at most 8192 px on a side (the projector's limit).
        cols = math.ceil(math.sqrt(self.num))
        sprite = image_grid(images, cols=cols, pad=0, pad_value=0.0)
        if sprite.shape[-1] == 1:
            sprite = np.repeat(sprite, 3, axis=-1)
        self.has_sprite = max(sprite.shape[:2]) <= 8192
        if self.has_sprite:
            _atomic_write(os.path.join(self.directory, "sprite.png"), encode_png(sprite))
        self.image_size = (w, h)

    def write(self, vectors):
        from tensorboard.plugins import projector  # noqa: PLC0415  (only when writing)
        _atomic_write(os.path.join(self.directory, "latents.tsv"),
                      "".join("\t".join(f"{v:.6g}" for v in row) + "\n" for row in vectors))
        config = projector.ProjectorConfig()
        emb = config.embeddings.add()
        emb.tensor_name = "posterior_mean"
        emb.tensor_path = os.path.join("projector", "latents.tsv")
        if self.has_metadata:
            emb.metadata_path = os.path.join("projector", "metadata.tsv")
        if self.has_sprite:
            emb.sprite.image_path = os.path.join("projector", "sprite.png")
            emb.sprite.single_image_dim.extend(self.image_size)
        projector.visualize_embeddings(self.run_dir, config)


def _atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- hparams

def write_hparams(run_dir, config, run_name):
    """Logs the run's settings to the hparams plugin (session = the run directory)."""
    from tensorboard.plugins.hparams import api as hp  # noqa: PLC0415
    values = {}
    for key, value in config.items():
        if isinstance(value, (bool, int, float, str)):
            values[key] = value
        elif value is not None:
            values[key] = str(value)
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        hp.hparams(values, trial_id=run_name)
    writer.close()


# ---------------------------------------------------------------------------- checkpoints

class CheckpointCallback(tfk.callbacks.Callback):
    """Saves the run's checkpoint at every epoch end and every `every_steps` steps.

    The checkpoint records `epoch` (the epoch in progress, or the next one after an epoch
    end) and `step_in_epoch` (steps of it already trained), so a resumed run trains exactly
    the remaining steps. Checkpoints are numbered by the optimizer step.

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
        self.epoch_var.assign(epoch)
        self.step_var.assign(in_epoch)
        self.manager.save(checkpoint_number=step)
