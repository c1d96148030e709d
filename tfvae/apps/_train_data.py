"""The train app's data: uint8 training images gathered per batch, float test images, and
an epoch stream that is a pure function of (seed, epoch), so resumes rebuild it exactly."""

import math

import numpy as np

import tfvae
from tfvae._tf import tf
from tfvae.apps import _cli

LABEL_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}


def not_found_message(name):
    """The app's version of the library's message: no `data_dir=`/`download=`, which are
    library arguments the app does not have."""
    dirs = " or ".join(tfvae.data._idx_dirs(name) or [])  # noqa: SLF001
    where = f"in {dirs}" if dirs else "in $TFVAE_DATA_DIR/" + name + "/"
    apt = " (Debian/Ubuntu: apt-get install dataset-fashion-mnist)" \
        if name == "fashion_mnist" else ""
    return (f"dataset {name!r} not found: put its IDX files (train-images-idx3-ubyte.gz, "
            f"train-labels-idx1-ubyte.gz, t10k-...) {where}{apt}, or set $TFVAE_DATA_DIR to "
            f"a folder with a {name}/ subfolder, or prepare it with TFDS (tfds build {name}).")


class Data:
    """The run's data: uint8 training images, float test images, the epoch stream.

    Epoch e's order is a shuffle seeded by (seed, e) and a dynamic binarization keyed by
    (seed, e, batch), so any epoch (or its tail) can be rebuilt after a restart.
    """

    def __init__(self, cfg, likelihood):
        self.cfg = cfg
        self.binarize = cfg.resolved_binarize(likelihood)
        try:
            with _cli.user_errors():
                train_x, _ = tfvae.data.load_arrays(cfg.dataset, "train")
                test_x, test_y = tfvae.data.load_arrays(cfg.dataset, "test")
        except _cli.UsageError as e:
            if isinstance(e.__cause__, tfvae.data.DatasetNotFoundError):
                raise _cli.UsageError(not_found_message(cfg.dataset)) from None
            raise
        if cfg.limit is not None:
            train_x = train_x[:cfg.limit]
        if cfg.test_limit is not None:
            test_x, test_y = test_x[:cfg.test_limit], test_y[:cfg.test_limit]
        self.image_shape = tuple(int(s) for s in train_x.shape[1:])
        self.num_train = len(train_x)
        self.batches = math.ceil(self.num_train / cfg.batch_size)
        self.steps_per_epoch = min(cfg.steps_per_epoch or self.batches, self.batches)
        self._train = tf.constant(train_x)  # uint8 [N, H, W, C]; batches are gathered
        # The test set gets one fixed binarization, so validation numbers compare across epochs.
        self.test_images = self._to_float_np(test_x)
        self.test_labels = test_y
        self.validation = tf.data.Dataset.from_tensor_slices(self.test_images) \
            .batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)
        self.label_names = LABEL_NAMES.get(cfg.dataset)

    def _to_float_np(self, images):
        x = images.astype(np.float32) / 255.0
        if self.binarize == "static":
            return (x > 0.5).astype(np.float32)
        if self.binarize == "dynamic":
            u = np.random.default_rng(self.cfg.seed).random(x.shape, dtype=np.float32)
            return (u < x).astype(np.float32)
        return x

    def epoch(self, epoch, skip=0):
        """Batches of epoch `epoch` (a scalar tensor or int), after its first `skip`."""
        cfg = self.cfg
        epoch = tf.cast(epoch, tf.int64)
        # A stateless permutation: epoch e's order is a pure function of (seed, e).
        order = tf.argsort(tf.random.stateless_uniform(
            [self.num_train], seed=tf.stack([tf.constant(cfg.seed, tf.int64), epoch])))
        ds = tfvae.data.ordered_batches(self._train, order, self.num_train, cfg.batch_size) \
            .take(self.steps_per_epoch).skip(skip)
        binarize, seed = self.binarize, cfg.seed

        def convert(index, images):
            key = tf.stack([tf.constant(seed, tf.int64), epoch * 1_000_000 + index])
            return tfvae.data.to_float(images, binarize, key=key)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    def stream(self, first_epoch, last_epoch):
        """Epochs first_epoch .. last_epoch - 1 back to back (fit with steps_per_epoch)."""
        return tf.data.Dataset.range(first_epoch, last_epoch).flat_map(self.epoch) \
            .prefetch(tf.data.AUTOTUNE)
