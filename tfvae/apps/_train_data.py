"""The train app's data: uint8 images (training images gathered per batch, bit-packed when
their binarization is static; validation and test images binarized once and converted to
float per batch), and an epoch stream that is a pure function of (seed, epoch), so resumes
rebuild it exactly."""

import numpy as np

import tfvae
from tfvae._tf import tf
from tfvae.apps import _cli

LABEL_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "dsprites": ["square", "ellipse", "heart"],  # the shape factor
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


def validation_size(cfg, num_train):
    """The images `--validation-split` holds out of `num_train` (its default resolved: 5000,
    or a tenth of a training split of fewer than 50,000 images). UsageError if it leaves no
    training image."""
    n = cfg.validation_split
    if n is None:
        n = 5000 if num_train >= 50_000 else num_train // 10
    if n >= num_train:
        raise _cli.UsageError(f"`--validation-split {n}` holds out every one of the "
                              f"{num_train} training images of {cfg.dataset!r}; use a smaller "
                              "value (0 validates on the test split).")
    return n


def train_batches(num_train, batch_size):
    """Training steps per epoch: whole batches only, so every step has one static shape and
    XLA compiles the train step once (a last partial batch is a second shape, so a second
    compilation, which costs time and raises the peak memory; benchmarks/README.md, "The
    main job's memory"). Each epoch's shuffle drops different images. A training set
    smaller than a batch is one partial batch."""
    return max(num_train // batch_size, 1)


def steps_per_epoch(cfg, num_train):
    """The steps of an epoch: the whole batches (`train_batches`), capped by
    --steps-per-epoch."""
    batches = train_batches(num_train, cfg.batch_size)
    return min(cfg.steps_per_epoch or batches, batches)


def eval_batch_size(num, batch_size):
    """The batch size for evaluating `num` images: the largest size from `batch_size` down
    to half of it that divides `num` (125 for 5,000 and 10,000 at 128), so every batch has
    the same shape (one compilation of the test step) and the mean of the batch means is
    the mean over the images; `batch_size` when none does."""
    for size in range(min(batch_size, num), max(batch_size // 2, 1) - 1, -1):
        if num % size == 0:
            return size
    return batch_size


class FloatImages:
    """uint8 images seen as float32 in [0, 1], converted when indexed: the validation and
    test splits are held small, and the few images a callback shows are converted on the
    way. Grey levels are held as uint8 and read / 255 (`tfvae.data.to_float`), a quarter of
    their float size; binarized images are held bit-packed (`image_shape` given:
    `tfvae.data.pack_binary` bits of H x W x C images), a 32nd, and read as exactly {0, 1}.
    Fashion-MNIST's 15,000 held images: 1.5 MB binarized, 12 MB grey, 47 MB as float. The
    values equal those of converting the whole array at once."""

    def __init__(self, tensor, image_shape=None):
        self.tensor = tensor  # uint8 host tensor, the one copy
        self.uint8 = np.asarray(tensor)  # a NumPy view of it
        self.image_shape = None if image_shape is None else tuple(image_shape)

    def _float(self, images):
        images = np.asarray(images)
        if self.image_shape is None:
            return images.astype(np.float32) / np.float32(255)
        bits = np.unpackbits(images, axis=-1, count=int(np.prod(self.image_shape)))
        return bits.reshape(*images.shape[:-1], *self.image_shape).astype(np.float32)

    def batches(self, batch_size):
        """A tf.data.Dataset of float32 [batch_size, H, W, C], converted per batch."""
        shape = self.image_shape
        convert = (lambda x: tfvae.data.to_float(x, None)) if shape is None else \
            (lambda x: tfvae.data.unpack_binary(x, shape))
        return tf.data.Dataset.from_tensor_slices(self.tensor).batch(batch_size) \
            .map(convert).prefetch(tf.data.AUTOTUNE)

    @property
    def shape(self):
        if self.image_shape is None:
            return self.uint8.shape
        return (len(self.uint8), *self.image_shape)

    def __len__(self):
        return len(self.uint8)

    def __getitem__(self, index):
        if self.image_shape is None:
            return self._float(self.uint8[index])
        # A packed row holds one whole image: index the rows, then the unpacked pixels.
        index = index if isinstance(index, tuple) else (index,)
        if not index or index[0] is Ellipsis or index[0] is None:
            return self._float(self.uint8)[index]
        rows, rest = self.uint8[index[0]], index[1:]
        if rows.ndim == 1:  # an integer picked one image
            return self._float(rows)[rest]
        return self._float(rows)[(slice(None), *rest)]

    def __iter__(self):
        return iter(self._float(self.uint8))

    def __array__(self, dtype=None, copy=None):
        x = self._float(self.uint8)
        return x if dtype is None else x.astype(dtype)


class Data:
    """The run's data: uint8 training images (bit-packed, an eighth of that, when the
    binarization is static or the data is dSprites); validation and test images binarized
    once (so their numbers compare across epochs), held as uint8 (bit-packed when
    binarized) and seen as float (`FloatImages`); the epoch stream. Validation images are
    held out of the training split (`validation_size`); the test split is for the end of
    the run only.

    Epoch e's order is a shuffle seeded by (seed, e) and a dynamic binarization keyed by
    (seed, e, batch), so any epoch (or its tail) can be rebuilt after a restart.
    """

    def __init__(self, cfg, likelihood):
        self.cfg = cfg
        self.binarize = cfg.resolved_binarize(likelihood)
        try:
            with _cli.user_errors():
                train_x, train_y = self._load_train(cfg.dataset)
                test_x, test_y = tfvae.data.load_arrays(cfg.dataset, "test")
        except _cli.UsageError as e:
            if isinstance(e.__cause__, tfvae.data.DatasetNotFoundError):
                raise _cli.UsageError(not_found_message(cfg.dataset)) from None
            raise
        self.num_validation = validation_size(cfg, len(train_x))
        if self.num_validation:
            # A seeded choice, the same whatever --limit: the held-out images, then the rest
            # in their file order (each epoch shuffles them anyway).
            held = np.zeros(len(train_x), bool)
            held[np.random.default_rng([cfg.seed, 1]).permutation(len(train_x))[
                :self.num_validation]] = True
            val_x, val_y = self._unpacked(train_x[held]), train_y[held]
            train_x = train_x[~held]
        if cfg.limit is not None:
            train_x = train_x[:cfg.limit]
        if cfg.test_limit is not None:
            test_x, test_y = test_x[:cfg.test_limit], test_y[:cfg.test_limit]
        self.image_shape = tuple(int(s) for s in test_x.shape[1:])
        # The training tensor holds bits: dSprites' rows as they come, and a static
        # binarization's one bit of each pixel (Fashion-MNIST's training images in 5.4 MB
        # instead of 43). Unpacked per batch.
        self.train_packed = self.source_packed or self.binarize == "static"
        if self.train_packed and not self.source_packed:
            train_x = tfvae.data.pack_binary(train_x)
        self.num_train = len(train_x)
        self.steps_per_epoch = steps_per_epoch(cfg, self.num_train)
        self._train = tfvae.data.host_variable(train_x)  # uint8, packed or not; gathered per batch
        del train_x
        # The test set gets one fixed binarization, so validation numbers compare across epochs.
        # One uint8 copy each: a tensor that the dataset slices, and a NumPy view of it.
        self.test_images, self.test_labels = self._fixed(test_x), test_y
        if self.num_validation:
            self.validation_images, self.validation_labels = self._fixed(val_x), val_y
        else:  # --validation-split 0: the test split, as before
            self.validation_images, self.validation_labels = self.test_images, test_y
        self.validation = self._batched(self.validation_images)
        self.test = self._batched(self.test_images)
        self.label_names = LABEL_NAMES.get(cfg.dataset)

    def _batched(self, images):
        """Float batches of a `FloatImages`, converted from its uint8 tensor per batch."""
        return images.batches(eval_batch_size(len(images), self.cfg.batch_size))

    def _load_train(self, name):
        """uint8 training images and labels; dSprites' stay bit-packed ([N, 64, 8], 377 MB
        instead of 3 GB) and are unpacked per batch."""
        self.source_packed = name == "dsprites"
        if not self.source_packed:
            return tfvae.data.load_arrays(name, "train")
        from tfvae import dsprites  # noqa: PLC0415
        indices = dsprites.split_indices("train")
        return dsprites.load_packed()[indices], dsprites.latents_classes(indices)[:, 1]

    def _unpacked(self, images):
        """uint8 [N, H, W, 1] in {0, 255} of packed dSprites rows; others as they are."""
        if not self.source_packed:
            return images
        return np.unpackbits(images, axis=-1)[..., None] * np.uint8(255)

    def _fixed(self, images):
        """`FloatImages` of uint8 `images` with their one fixed binarization, bit-packed:
        static (x / 255 > 0.5 iff x > 127) or one seeded draw; else the grey levels."""
        if self.binarize is None:
            return FloatImages(tfvae.data.host_tensor(images))
        if self.binarize == "dynamic":
            u = np.random.default_rng(self.cfg.seed).random(images.shape, dtype=np.float32)
            images = np.where(u < images.astype(np.float32) / 255.0, np.uint8(255), np.uint8(0))
        return FloatImages(tfvae.data.host_tensor(tfvae.data.pack_binary(images)),
                           image_shape=images.shape[1:])

    def epoch(self, epoch, skip=0):
        """Batches of epoch `epoch` (a scalar tensor or int), after its first `skip`."""
        cfg = self.cfg
        epoch = tf.cast(epoch, tf.int64)
        # A stateless permutation: epoch e's order is a pure function of (seed, e).
        order = tf.argsort(tf.random.stateless_uniform(
            [self.num_train], seed=tf.stack([tf.constant(cfg.seed, tf.int64), epoch])))
        ds = tfvae.data.ordered_batches(self._train, order, self.num_train, cfg.batch_size,
                                        drop_remainder=self.num_train >= cfg.batch_size) \
            .take(self.steps_per_epoch).skip(skip)
        binarize, seed, shape = self.binarize, cfg.seed, self.image_shape
        packed = self.train_packed

        def convert(index, images):
            if packed:  # bits -> float32 {0, 1}: the values of any binarization of {0, 255}
                return tfvae.data.unpack_binary(images, shape)
            key = tf.stack([tf.constant(seed, tf.int64), epoch * 1_000_000 + index])
            return tfvae.data.to_float(images, binarize, key=key)
        return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE)

    def stream(self, first_epoch, last_epoch):
        """Epochs first_epoch .. last_epoch - 1 back to back (fit with steps_per_epoch)."""
        return tf.data.Dataset.range(first_epoch, last_epoch).flat_map(self.epoch) \
            .prefetch(tf.data.AUTOTUNE)
