"""IDX files (the MNIST format): reading, writing for tests, and the checks that a file holds
what tfvae trains on (28 x 28 uint8 images, labels 0..9), each failure naming the file."""

import gzip
import logging
import os
import struct
import zlib

import numpy as np

log = logging.getLogger("tfvae.data")

IDX_DATASETS = {
    "fashion_mnist": ["/usr/share/datasets/fashion-mnist"],
    "mnist": ["/usr/share/datasets/mnist"],
}

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# IDX type codes -> NumPy dtypes (big-endian), from the format's definition.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}
#: image height and width of the IDX datasets (MNIST and Fashion-MNIST)
IDX_IMAGE_SIZE = (28, 28)
NUM_CLASSES = 10


def read_idx(path, expected_ndim=None):
    """Reads an IDX file (optionally gzipped) into a NumPy array, validating its header.

    Args:
        path: file path; a `.gz` suffix is decompressed.
        expected_ndim: 3 for images, 1 for labels; None accepts any.

    Raises:
        ValueError: bad magic number, unknown type code, wrong rank, a size that does not
            match the header, or a damaged file (a truncated or corrupt .gz); each names
            the file.
        OSError: the file cannot be opened.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with open(path, "rb"):
        pass  # a missing or unreadable file stays an OSError
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        reason = str(e).strip() or type(e).__name__
        raise ValueError(f"{path}: cannot decompress it ({reason}); the file is truncated or "
                         "damaged: download it again.") from None
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(data)} bytes).")
    zero, type_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number 0x{data[:4].hex()} "
                         "(expected 0x000008NN for unsigned bytes).")
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"{path}: IDX file has {ndim} dimensions; expected {expected_ndim}.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: IDX size mismatch: header says {dims} "
                         f"({expected} bytes) but the file has {len(data)} bytes.")
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def write_idx(path, array, dtype=np.uint8):
    """Writes `array` as an IDX file of `dtype` (gzipped if `path` ends in .gz); for tests.

    `dtype` is one of the format's types (uint8, int8, int16, int32, float32, float64).
    """
    codes = {np.dtype(v).newbyteorder(">") if np.dtype(v).itemsize > 1 else np.dtype(v): k
             for k, v in _IDX_DTYPES.items()}
    dtype = np.dtype(dtype)
    dtype = dtype.newbyteorder(">") if dtype.itemsize > 1 else dtype
    if dtype not in codes:
        raise ValueError(f"`dtype` must be an IDX type; got {dtype}.")
    array = np.ascontiguousarray(array, dtype)
    payload = struct.pack(">HBB", 0, codes[dtype], array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


def _idx_dirs(name):
    dirs = []
    if os.environ.get("TFVAE_DATA_DIR"):
        dirs.append(os.path.join(os.environ["TFVAE_DATA_DIR"], name))
    return dirs + IDX_DATASETS.get(name, [])


def _find(directory, stem):
    for candidate in (stem, stem + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
        if os.path.islink(path):  # a dangling link: a broken setup, not a missing file
            raise ValueError(f"{path} is a symbolic link to {os.readlink(path)!r}, which does "
                             "not exist; fix or remove the link.")
    return None


def check_idx_images(path, images, name):
    """Refuses IDX images the pipeline cannot read as uint8 grey levels of `name`.

    Raises:
        ValueError: naming `path`, what is wrong (non-finite values with their count, a
            type other than unsigned bytes, no images, a size other than 28x28) and the fix.
    """
    if images.dtype.kind == "f":
        bad = int(images.size - np.count_nonzero(np.isfinite(images)))
        if bad:
            raise ValueError(f"{path}: {bad} of {images.size} pixel values are NaN or "
                             f"infinite; {name} images are unsigned bytes 0..255: "
                             "re-create the file from the original data.")
    if images.dtype != np.uint8:
        raise ValueError(f"{path}: pixels are {images.dtype.name} but {name} IDX images are "
                         "unsigned bytes 0..255 (type 0x08): convert the file to uint8.")
    if len(images) == 0:
        raise ValueError(f"{path}: the file holds no images (its header says 0); download "
                         "it again.")
    if tuple(images.shape[1:3]) != IDX_IMAGE_SIZE:
        raise ValueError(f"{path}: images are {images.shape[1]}x{images.shape[2]} but "
                         f"{name} images are {IDX_IMAGE_SIZE[0]}x{IDX_IMAGE_SIZE[1]}: use the "
                         f"original {name} files.")


def check_idx_labels(path, labels, name):
    """Refuses labels that are not integers in 0..9 (ValueError naming `path`)."""
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels are {labels.dtype.name}; {name} labels are "
                         f"integers 0..{NUM_CLASSES - 1}: use the original file.")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: {int(bad.sum())} label(s) outside 0..{NUM_CLASSES - 1} "
                         f"(the first: {int(labels[i])} at index {i}); use the original file.")


def _load_idx(name, split):
    """Images [N, 28, 28, 1] uint8 and labels [N] int64 from the first directory that has them."""
    for directory in _idx_dirs(name):
        images_path, labels_path = (_find(directory, s) for s in IDX_FILES[split])
        if images_path and labels_path:
            images = read_idx(images_path, expected_ndim=3)
            check_idx_images(images_path, images, name)
            labels = read_idx(labels_path, expected_ndim=1)
            check_idx_labels(labels_path, labels, name)
            if len(images) != len(labels):
                raise ValueError(f"{directory}: {len(images)} images but {len(labels)} labels.")
            log.info("%s/%s: IDX files in %s", name, split, directory)
            return images[..., None], labels.astype(np.int64)
        log.info("%s/%s: no IDX files in %s", name, split, directory)
    return None
