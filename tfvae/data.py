"""Datasets as tf.data pipelines of float32 images in [0, 1], shape [B, H, W, C].

`load(name, split, batch_size)` resolves a named dataset in this order, logging each step:

1. a prepared TFDS dataset in the TFDS data dir (`data_dir`, or TFDS's default);
2. raw IDX files (`train-images-idx3-ubyte[.gz]` ...) in `$TFVAE_DATA_DIR/<name>/`, or for
   Fashion-MNIST in `/usr/share/datasets/fashion-mnist/` (Debian's `dataset-fashion-mnist`);
3. a TFDS download (needs the internet).

`synthetic` is a small procedural dataset (deterministic, with labels) for tests.
"""

import logging
import os

import numpy as np

from tfvae._tf import tf
# Re-exported: tfvae.data is where users and tests find the IDX reader and writer.
from tfvae.idx import (IDX_DATASETS, IDX_FILES, IDX_IMAGE_SIZE, NUM_CLASSES,  # noqa: F401
                       _idx_dirs, _load_idx, check_idx_images, check_idx_labels, read_idx,
                       write_idx)

log = logging.getLogger(__name__)

DATASETS = ("fashion_mnist", "mnist", "synthetic", "dsprites")
SPLITS = ("train", "test")
BINARIZE = (None, "static", "dynamic")


class DatasetNotFoundError(ValueError):
    """No source could provide the dataset; the message says how to provide it."""


# ---------------------------------------------------------------------------- TFDS

def _load_tfds(name, split, data_dir, download):
    try:
        import tensorflow_datasets as tfds  # slow to import; only when needed
    except ImportError:  # pragma: no cover
        return None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        if not download and not tf.io.gfile.exists(
                os.path.join(builder.data_dir, "dataset_info.json")):
            log.info("%s/%s: no prepared TFDS dataset in %s", name, split, builder.data_dir)
            return None
        if download:
            log.info("%s/%s: downloading with TFDS", name, split)
            builder.download_and_prepare()
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
    except Exception as e:  # noqa: BLE001  (TFDS raises many types; each means "not here")
        log.info("%s/%s: TFDS %s failed: %s", name, split,
                 "download" if download else "load", str(e).splitlines()[0][:200])
        return None
    images, labels = [], []
    for image, label in ds.batch(10000).as_numpy_iterator():
        images.append(image)
        labels.append(label)
    log.info("%s/%s: TFDS (%s)", name, split, builder.data_dir)
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def _not_found_message(name):
    dirs = " or ".join(_idx_dirs(name) or [f"$TFVAE_DATA_DIR/{name}/"])
    apt = " (on Debian/Ubuntu: apt-get install dataset-fashion-mnist)" \
        if name == "fashion_mnist" else ""
    return (f"Dataset {name!r} not found. Provide it one of three ways: (1) prepare it with "
            f"TFDS (tfds build {name}, or tfds.load on a machine with internet) and pass "
            f"data_dir; (2) put the raw IDX files (train-images-idx3-ubyte.gz, "
            f"train-labels-idx1-ubyte.gz, t10k-...) in {dirs}{apt}, or set $TFVAE_DATA_DIR "
            f"to a folder with a {name}/ subfolder; (3) allow a TFDS download "
            f"(download=True, needs internet).")


# ---------------------------------------------------------------------------- synthetic

def synthetic_arrays(split, image_shape=(28, 28, 1), num_examples=None, num_classes=10):
    """A deterministic procedural dataset: 10 classes of blurred strokes with random jitter.

    Each class is an oriented bar at a class-specific angle plus a class-specific blob;
    examples jitter position, thickness and contrast, so the data has real structure for a
    VAE to learn (a few latent dims explain most of it) and labels for projector tests.

    Returns:
        images [N, H, W, C] uint8 and labels [N] int64.
    """
    num_examples = num_examples or {"train": 2048, "test": 512}[split]
    rng = np.random.default_rng({"train": 0, "test": 1}[split])
    h, w, c = image_shape
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    labels = rng.integers(0, num_classes, num_examples)
    angle = np.pi * labels / num_classes + rng.normal(0, 0.08, num_examples)
    shift = rng.normal(0, 0.12, (num_examples, 2))
    width = rng.uniform(0.10, 0.22, num_examples)
    contrast = rng.uniform(0.7, 1.0, num_examples)
    blob_angle = 2 * np.pi * labels / num_classes
    bx, by = 0.55 * np.cos(blob_angle), 0.55 * np.sin(blob_angle)
    x0 = xx[None] - shift[:, 0, None, None]
    y0 = yy[None] - shift[:, 1, None, None]
    dist = np.abs(x0 * np.sin(angle)[:, None, None] - y0 * np.cos(angle)[:, None, None])
    bar = np.exp(-(dist / width[:, None, None]) ** 2) * (np.hypot(x0, y0) < 0.8)
    blob = np.exp(-((x0 - bx[:, None, None]) ** 2 + (y0 - by[:, None, None]) ** 2) / 0.03)
    img = np.clip(contrast[:, None, None] * np.maximum(bar, blob), 0, 1)
    channel_gain = np.linspace(1.0, 0.6, c)
    images = (255 * img[..., None] * channel_gain).round().astype(np.uint8)
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------- load

def load_arrays(name, split, data_dir=None, download=False, image_shape=(28, 28, 1)):
    """Images [N, H, W, C] uint8 and labels [N] int64 from the resolution chain."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {list(DATASETS)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {list(SPLITS)}.")
    if name == "synthetic":
        return synthetic_arrays(split, image_shape=tuple(image_shape))
    if name == "dsprites":  # dSprites-like data with factors: see tfvae/dsprites.py
        from tfvae import dsprites
        return dsprites.load_arrays(split, data_dir=data_dir)
    for source in (lambda: _load_tfds(name, split, data_dir, download=False),
                   lambda: _load_idx(name, split),
                   lambda: _load_tfds(name, split, data_dir, download=True)
                   if download else None):
        arrays = source()
        if arrays is not None:
            return arrays
    raise DatasetNotFoundError(_not_found_message(name))


def load(name="fashion_mnist", split="train", batch_size=128, binarize=None,
         with_labels=False, shuffle=None, seed=0, data_dir=None, download=False,
         drop_remainder=False, limit=None, image_shape=(28, 28, 1), with_factors=False):
    """A shuffled, batched, prefetched tf.data.Dataset of images in [0, 1], held in memory.

    Args:
        name: "fashion_mnist", "mnist" or "synthetic". Default value: "fashion_mnist".
        split: "train" or "test".
        batch_size: images per batch, B.
        binarize: None (grey levels / 255), "static" (threshold at 0.5, fixed: the
            benchmark's FMNIST-bin; held bit-packed, `pack_binary`) or "dynamic" (a fresh
            Bernoulli draw every epoch).
        with_labels: yield (images, labels) instead of images.
        shuffle: shuffle each epoch. Default value: True for "train", False for "test".
        seed: seed of the shuffle order and dynamic binarization.
        data_dir: TFDS data dir for step 1 (and 3).
        download: allow step 3, a TFDS download.
        drop_remainder: drop the last partial batch.
        limit: keep only the first `limit` examples.
        image_shape: (H, W, C) of `synthetic` images; the others are (28, 28, 1).
        with_factors: yield (images, factors) for "dsprites" (see `tfvae.dsprites.load`).

    Returns:
        tf.data.Dataset of float32 [B, H, W, C] (and int64 [B] labels).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size <= 0:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
    if binarize not in BINARIZE:
        raise ValueError(f"`binarize` must be one of {list(BINARIZE)}; got {binarize!r}.")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ValueError(f"`limit` must be a positive int or None; got {limit!r}.")
    if name == "dsprites":  # binary images kept bit-packed; `binarize` changes nothing
        from tfvae import dsprites
        return dsprites.load(split, batch_size, with_labels, with_factors, shuffle, seed,
                             data_dir, drop_remainder, limit)
    images, labels = load_arrays(name, split, data_dir=data_dir, download=download,
                                 image_shape=image_shape)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    shape = images.shape[1:]
    if binarize == "static":  # held bit-packed, an eighth of the uint8 size
        images = pack_binary(images)
    shuffle = (split == "train") if shuffle is None else shuffle
    num = len(images)
    tensors = (host_variable(images), host_variable(labels))

    def epoch(key):
        order = (tf.random.experimental.stateless_shuffle(
            tf.range(num, dtype=tf.int64), seed=tf.stack([key, tf.constant(seed, tf.int64)]))
            if shuffle else tf.range(num, dtype=tf.int64))

        def convert(index, batch):
            x, y = batch
            # One key per (epoch, batch): a fresh draw every epoch, repeatable for a seed.
            x = unpack_binary(x, shape) if binarize == "static" else \
                to_float(x, binarize, key=tf.stack([key, index]))
            return (x, y) if with_labels else x
        return ordered_batches(tensors, order, num, batch_size, drop_remainder).map(
            convert, num_parallel_calls=tf.data.AUTOTUNE)

    if shuffle or binarize == "dynamic":
        # A new key each time the dataset is iterated (each `fit` epoch), drawn from `seed`.
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        ds = keys.flat_map(epoch).apply(tf.data.experimental.assert_cardinality(
            _num_batches(num, batch_size, drop_remainder)))
    else:
        ds = epoch(tf.constant(0, tf.int64))
    return ds.prefetch(tf.data.AUTOTUNE)


def host_tensor(array):
    """A host (CPU) tensor with one copy of the NumPy `array`. `tf.constant(array)` holds
    two: 94 MB for the 47 MB of Fashion-MNIST's uint8 training images, measured here; an
    Identity op's output on the CPU is the converted buffer alone."""
    with tf.device("/CPU:0"):
        return tf.identity(array)


def host_variable(array):
    """A non-trainable CPU variable holding one copy of the NumPy `array`, for pipelines that
    gather their batches from it (`ordered_batches`).

    tf.data's default graph rewrites serialize a pipeline's graph when an iterator is made,
    and a tensor the pipeline captures is serialized by value: each iterator then holds a
    second copy for its whole life (+46 MB for Fashion-MNIST's uint8 training images, +4 MB
    from a variable, measured with VmRSS). A variable is captured by its handle. Under a
    tf.distribute strategy's scope a variable would be mirrored per replica, so there this
    returns `host_tensor(array)`.
    """
    tensor = host_tensor(array)
    if tf.distribute.has_strategy():
        return tensor
    with tf.device("/CPU:0"):
        return tf.Variable(tensor, trainable=False, name="host_data")


def ordered_batches(tensors, order, num, batch_size, drop_remainder=False):
    """Batches of in-memory tensors in a given order, one gather per batch.

    The per-element path (`from_tensor_slices` -> `shuffle` -> `batch`) handles every image
    on its own; on a 2-core machine that costs a sizeable share of the CPU the training
    step needs (see benchmarks/profile_step.py). Here an epoch is `num_batches` gathers.

    Args:
        tensors: a nest of tensors with a leading axis of `num` examples.
        order: int64 [num], the example order (a permutation, or a range).
        num: the number of examples, a Python int.
        batch_size: examples per batch.
        drop_remainder: drop the last partial batch (so every batch has a static size).

    Returns:
        tf.data.Dataset of (batch index int64 [], the nest gathered to [batch, ...]).
    """
    def gather(i):
        index = order[i * batch_size:tf.minimum((i + 1) * batch_size, num)]
        batch = tf.nest.map_structure(lambda t: tf.gather(t, index), tensors)
        if drop_remainder:
            batch = tf.nest.map_structure(
                lambda t: tf.ensure_shape(t, [batch_size, *t.shape[1:]]), batch)
        return i, batch
    return tf.data.Dataset.range(_num_batches(num, batch_size, drop_remainder)).map(
        gather, num_parallel_calls=tf.data.AUTOTUNE)


def _num_batches(num, batch_size, drop_remainder):
    return num // batch_size if drop_remainder else -(-num // batch_size)


def pack_binary(images):
    """uint8 [N, H, W, C] -> uint8 [N, ceil(H*W*C / 8)]: the static binarization of each
    image (`to_float(x, "static")`: x / 255 > 0.5, so x > 127) as bits, MSB first, in
    row-major pixel order. An eighth of the uint8 size: 5.4 MB for Fashion-MNIST's 55,000
    training images instead of 43. `unpack_binary` inverts it, in-graph, per batch."""
    images = np.asarray(images)
    pixels = int(np.prod(images.shape[1:]))  # not -1: an empty array has no size to infer
    return np.packbits(images.reshape(len(images), pixels) > 127, axis=-1)


def unpack_binary(packed, image_shape):
    """uint8 [B, ...] of `pack_binary` bits (any trailing shape holding H*W*C bits, MSB
    first) -> float32 [B, H, W, C] in {0, 1}, in-graph: the values `to_float(x, "static")`
    gives for the images that were packed."""
    # One gather from a table of every byte's 8 floats: a single kernel where shifting,
    # masking and casting took five, in a pipeline that shares the cores with the step.
    x = tf.gather(_BYTE_BITS, tf.cast(packed, tf.int32))
    size = int(np.prod(image_shape))
    x = tf.reshape(x, [tf.shape(packed)[0], -1])
    if x.shape[1] != size:  # the last byte's padding bits
        x = x[:, :size]
    return tf.reshape(x, [-1, *image_shape])


#: Row b: the bits of byte b, MSB first, as float32 {0, 1} (`unpack_binary`'s table).
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)


def to_float(images, binarize, key=None):
    """uint8 images -> float32 in [0, 1]: grey levels / 255, or binarized.

    Args:
        images: uint8 [..., H, W, C].
        binarize: None or "none" (grey levels), "static" (threshold at 0.5) or "dynamic"
            (a Bernoulli draw with the grey level as its probability).
        key: stateless seed [2] of the dynamic draw.
    """
    x = tf.cast(images, tf.float32) / 255.0
    if binarize == "static":
        return tf.cast(x > 0.5, tf.float32)
    if binarize == "dynamic":
        return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed=key) < x, tf.float32)
    return x
