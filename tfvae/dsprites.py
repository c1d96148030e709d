"""dSprites-like data: the exact factor grid of DeepMind's dSprites, rendered here.

The grid is the release's (Matthey et al. 2017, github.com/deepmind/dsprites-dataset):
latents color (1) x shape (3: square, ellipse, heart) x scale (6, linspace(0.5, 1, 6)) x
orientation (40, linspace(0, 2 pi, 40)) x posX (32, linspace(0, 1, 32)) x posY (32), in
C order (posY varies fastest): 737,280 binary 64 x 64 images. `latents_values` follow the
release too (color 1; shape 1, 2, 3). The pixels are our own rendering, so the data is
"dSprites-like": each (shape, scale, orientation) sprite is rasterized once into a 25 x 25
template by 5 x 5 supersampling (a pixel is on when more than half of its samples are
inside), then translated by whole pixels: position index i puts the sprite's centre on
pixel 16 + i (x = column, y = row, growing downward), one pixel per step as in the release.
Orientation turns the sprite counter-clockwise as displayed; angles are taken modulo 2 pi,
so orientations 0 and 2 pi (both in the grid, as in the release) give the same image.

The full set is cached bit-packed and compressed (~`cache_path()`), written atomically,
named by a checksum of the renderer's source. A prepared TFDS `dsprites` (the release's
pixels) is used instead when present. There is no official split: "train" is the whole
grid (as in disentanglement_lib); "test" is a fixed subset of it (`TEST_SIZE` indices
drawn with seed 0), for monitoring reconstruction, not generalization.
"""

import functools
import hashlib
import inspect
import io
import logging
import os
import tempfile

import numpy as np

from tfvae.evaluation.ground_truth import GroundTruthData

log = logging.getLogger(__name__)

LATENT_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
LATENT_SIZES = (1, 3, 6, 40, 32, 32)
LATENT_VALUES = {"color": np.array([1.0]), "shape": np.array([1.0, 2.0, 3.0]),
                 "scale": np.linspace(0.5, 1, 6), "orientation": np.linspace(0, 2 * np.pi, 40),
                 "posX": np.linspace(0, 1, 32), "posY": np.linspace(0, 1, 32)}
SHAPE_NAMES = ("square", "ellipse", "heart")
FACTOR_NAMES = LATENT_NAMES[1:]  # the five that vary (color is constant), as disentanglement_lib
NUM_IMAGES = int(np.prod(LATENT_SIZES))
IMAGE_SIZE = 64
TEST_SIZE = 10000
_RADIUS = 12                    # templates are (2R+1)^2 pixels; the largest sprite reaches 11.1
_PATCH = 2 * _RADIUS + 1
_SUPERSAMPLE = 5
_FIRST_CENTRE = 16              # pixel of position index 0; index 31 -> pixel 47
VERSION = 1


def _inside(shape, x, y):
    """Whether points (x right, y up; pixels at scale 1) lie inside the unrotated sprite."""
    if shape == 0:  # square, side 15.6 px (edges off the half-pixel lines at orientation 0)
        return np.maximum(np.abs(x), np.abs(y)) <= 7.8
    if shape == 1:  # ellipse, axes 20 x 10 px, long axis along x at orientation 0
        return (x / 10.0) ** 2 + (y / 5.0) ** 2 <= 1.0
    u, v = x / 7.5, y / 7.5 + 0.1  # heart (x^2 + y^2 - 1)^3 <= x^2 y^3, lobes up, centred
    return (u * u + v * v - 1) ** 3 <= u * u * v ** 3


@functools.lru_cache(maxsize=1)
def templates():
    """bool [3, 6, 40, 25, 25]: every (shape, scale, orientation) sprite centred on pixel 12."""
    offsets = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
    coords = (np.arange(_PATCH)[:, None] + offsets[None]).reshape(-1) - (_RADIUS + 0.5)
    cols, rows = np.meshgrid(coords, coords)        # [P*S, P*S] image coordinates, y down
    out = np.zeros(LATENT_SIZES[1:4] + (_PATCH, _PATCH), bool)
    for k, scale in enumerate(LATENT_VALUES["scale"]):
        for o, angle in enumerate(np.mod(LATENT_VALUES["orientation"], 2 * np.pi)):
            c, s = np.cos(angle), np.sin(angle)
            # The sprite turned counter-clockwise by `angle`: rotate points back by -angle.
            x = (c * cols - s * rows) / scale
            y = (-s * cols - c * rows) / scale
            for shape in range(3):
                hits = _inside(shape, x, y).reshape(_PATCH, _SUPERSAMPLE, _PATCH, _SUPERSAMPLE)
                out[shape, k, o] = hits.mean(axis=(1, 3)) >= 0.5
    return out


def checksum():
    """A short hash of the renderer (its source and constants): the cache file's name."""
    source = inspect.getsource(_inside) + inspect.getsource(templates) + repr(
        (VERSION, LATENT_SIZES, _RADIUS, _SUPERSAMPLE, _FIRST_CENTRE, IMAGE_SIZE))
    return hashlib.sha256(source.encode()).hexdigest()[:12]


def latents_classes(indices=None):
    """int64 [N, 6] class indices of the release's latents for image `indices` (all if None)."""
    indices = np.arange(NUM_IMAGES) if indices is None else np.asarray(indices)
    return np.stack(np.unravel_index(indices, LATENT_SIZES), axis=-1).astype(np.int64)


def latents_values(classes):
    """float64 [N, 6] latent values (the release's `latents_values`) of classes [N, 6]."""
    classes = np.asarray(classes)
    return np.stack([LATENT_VALUES[n][classes[:, i]] for i, n in enumerate(LATENT_NAMES)], -1)


def index_of(classes):
    """int64 [N]: the image index of latent classes [N, 6] (release order)."""
    return np.ravel_multi_index(tuple(np.asarray(classes).T), LATENT_SIZES).astype(np.int64)


def render(classes):
    """uint8 [N, 64, 64] images in {0, 1} for latent classes [N, 6], from the templates."""
    classes = np.asarray(classes, np.int64)
    if classes.ndim != 2 or classes.shape[1] != 6:
        raise ValueError(f"`classes` must have shape [N, 6]; got {classes.shape}.")
    sizes = np.array(LATENT_SIZES)
    if np.any(classes < 0) or np.any(classes >= sizes):
        raise ValueError(f"latent classes out of range; sizes are {list(LATENT_SIZES)}.")
    n = len(classes)
    patch = np.arange(_PATCH)
    top = _FIRST_CENTRE - _RADIUS + classes[:, 5]
    left = _FIRST_CENTRE - _RADIUS + classes[:, 4]
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    out[np.arange(n)[:, None, None], top[:, None, None] + patch[None, :, None],
        left[:, None, None] + patch[None, None, :]] = templates()[
        classes[:, 1], classes[:, 2], classes[:, 3]]
    return out


def render_block(shape, scale, orientation):
    """uint8 [32, 32, 64, 64]: one sprite at every (posX, posY), by sliding one canvas."""
    span = IMAGE_SIZE + LATENT_SIZES[4] - 1
    canvas = np.zeros((span, span), np.uint8)
    centre = _FIRST_CENTRE + LATENT_SIZES[4] - 1      # window a shows the centre at 47 - a
    canvas[centre - _RADIUS:centre + _RADIUS + 1, centre - _RADIUS:centre + _RADIUS + 1] = \
        templates()[shape, scale, orientation]
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (IMAGE_SIZE, IMAGE_SIZE))
    return windows[::-1, ::-1].transpose(1, 0, 2, 3)  # [posY row, posX col] -> [posX, posY]


def render_all_packed(num=None):
    """uint8 [737280, 64, 8]: the grid (its first `num` images), packed along x, MSB first."""
    num = NUM_IMAGES if num is None else num
    out = np.empty((num, IMAGE_SIZE, IMAGE_SIZE // 8), np.uint8)
    block = LATENT_SIZES[4] * LATENT_SIZES[5]
    for b, (shape, scale, orient) in enumerate(np.ndindex(*LATENT_SIZES[1:4])):
        if b * block >= num:
            break
        out[b * block:(b + 1) * block] = np.packbits(render_block(shape, scale, orient),
                                                     axis=-1).reshape(block, IMAGE_SIZE, -1)[
            :num - b * block]
    return out


def cache_dir():
    """$TFVAE_DATA_DIR/dsprites/ when set, else ~/.cache/tfvae/dsprites/."""
    root = os.environ.get("TFVAE_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "tfvae")
    return os.path.join(root, "dsprites")


def cache_path():
    return os.path.join(cache_dir(), f"dsprites_like_v{VERSION}_{checksum()}.npz")


def _load_tfds_packed(data_dir):
    """The release's pixels from a prepared TFDS `dsprites`, in release order; None if absent."""
    try:
        import tensorflow_datasets as tfds
        builder = tfds.builder("dsprites", data_dir=data_dir)
        if not os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
            log.info("dsprites: no prepared TFDS dataset in %s", builder.data_dir)
            return None
        ds = builder.as_dataset(split="train", shuffle_files=False)
    except Exception as e:  # noqa: BLE001  (TFDS raises many types; each means "not here")
        log.info("dsprites: TFDS load failed: %s", str(e).splitlines()[0][:200])
        return None
    out = np.zeros((NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8), np.uint8)
    seen = np.zeros(NUM_IMAGES, bool)
    keys = ("shape", "scale", "orientation", "x_position", "y_position")
    for ex in ds.batch(8192).as_numpy_iterator():  # TFDS shuffles; restore the release order
        classes = np.stack([np.zeros_like(ex["label_shape"])] +
                           [ex[f"label_{k}"] for k in keys], -1)
        idx = index_of(classes)
        out[idx] = np.packbits(ex["image"][..., 0] > 0, axis=-1)
        seen[idx] = True
    if not seen.all():
        raise ValueError(f"{builder.data_dir}: TFDS dsprites lacks {int((~seen).sum())} images.")
    log.info("dsprites: TFDS (%s)", builder.data_dir)
    return out


def load_packed(data_dir=None):
    """uint8 [737280, 64, 8] packed images: TFDS if prepared, else the cache, else render."""
    packed = _load_tfds_packed(data_dir)
    if packed is not None:
        return packed
    path = cache_path()
    if os.path.exists(path):
        with np.load(path) as f:
            images, stamp = f["images"], str(f["checksum"])
        if stamp == checksum() and images.shape == (NUM_IMAGES, IMAGE_SIZE, IMAGE_SIZE // 8):
            log.info("dsprites: cached rendering %s", path)
            return images
        log.warning("dsprites: %s does not match this renderer; rendering again", path)
    log.info("dsprites: rendering the grid (cache: %s)", path)
    packed = render_all_packed()
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir(), suffix=".tmp")
    try:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=packed, checksum=checksum())
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
        os.replace(tmp, path)  # atomic: readers see the whole file or none
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return packed


def split_indices(split):
    """int64 image indices of "train" (all) or "test" (a fixed sorted subset of TEST_SIZE)."""
    if split == "train":
        return np.arange(NUM_IMAGES, dtype=np.int64)
    if split == "test":
        return np.sort(np.random.default_rng(0).choice(NUM_IMAGES, TEST_SIZE, replace=False))
    raise ValueError(f"Unknown split {split!r}; expected one of ['train', 'test'].")


def load_arrays(split, data_dir=None):
    """uint8 images [N, 64, 64, 1] in {0, 255} and shape labels [N] int64 (as `data`).

    The "train" split unpacked is 3 GB; `load` keeps it packed (377 MB) instead.
    """
    indices = split_indices(split)
    images = np.unpackbits(load_packed(data_dir)[indices], axis=-1)[..., None] * np.uint8(255)
    return images, latents_classes(indices)[:, 1]


def load(split="train", batch_size=128, with_labels=False, with_factors=False, shuffle=None,
         seed=0, data_dir=None, drop_remainder=False, limit=None):
    """A tf.data.Dataset of float32 [B, 64, 64, 1] images in {0, 1}, unpacked per batch.

    With `with_factors` each element is (images, {"classes": int64 [B, 5], "values":
    float32 [B, 5]}) over FACTOR_NAMES; with `with_labels`, (images, shape class [B]).
    Other arguments as `tfvae.data.load` (images are binary: binarization changes nothing).
    """
    from tfvae import data
    from tfvae._tf import tf
    if with_labels and with_factors:
        raise ValueError("Pass at most one of `with_labels` and `with_factors`.")
    indices = split_indices(split)[:limit]
    packed = data.host_variable(load_packed(data_dir)[indices])
    classes = data.host_variable(latents_classes(indices)[:, 1:])
    table = tf.constant(np.stack([np.pad(LATENT_VALUES[n], (0, 40 - len(LATENT_VALUES[n])))
                                  for n in FACTOR_NAMES]), tf.float32)  # [5, 40]
    shuffle = (split == "train") if shuffle is None else shuffle
    num = len(indices)

    def convert(_, batch):
        packed_x, c = batch
        x = data.unpack_binary(packed_x, (IMAGE_SIZE, IMAGE_SIZE, 1))
        if with_factors:
            values = tf.transpose(tf.gather(table, tf.transpose(c), batch_dims=1))
            return x, {"classes": c, "values": values}
        return (x, c[:, 0]) if with_labels else x

    def epoch(key):
        order = (tf.random.experimental.stateless_shuffle(
            tf.range(num, dtype=tf.int64), seed=tf.stack([key, tf.constant(seed, tf.int64)]))
            if shuffle else tf.range(num, dtype=tf.int64))
        return data.ordered_batches((packed, classes), order, num, batch_size,
                                    drop_remainder).map(convert, tf.data.AUTOTUNE)

    if not shuffle:
        return epoch(tf.constant(0, tf.int64)).prefetch(tf.data.AUTOTUNE)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    return keys.flat_map(epoch).apply(tf.data.experimental.assert_cardinality(
        data._num_batches(num, batch_size, drop_remainder))).prefetch(tf.data.AUTOTUNE)


class DSprites(GroundTruthData):
    """The five varying factors (FACTOR_NAMES) and images rendered on demand from them.

    `sample_factors` draws each factor's class uniformly, as disentanglement_lib;
    `sample_observations_from_factors` renders float32 [N, 64, 64, 1] (no full set needed).
    """

    factor_names = FACTOR_NAMES
    factor_sizes = LATENT_SIZES[1:]
    observation_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)

    def sample_observations_from_factors(self, factors, rng):
        factors = self.check_factors(factors)
        classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)
        return render(classes)[..., None].astype(np.float32)
