"""Image grids from an exported model: `python -m tfvae.apps.sample --model saved_models/RUN`.

    python -m tfvae.apps.sample --model saved_models/RUN --num 64 --out samples.png
    python -m tfvae.apps.sample --model saved_models/RUN --reconstruct --split test --out recon.png

Without `--reconstruct`: E[x|z] for `--num` draws z ~ p(z) (the `sample` signature). With
it: the first `--num` images of a dataset split, each row of inputs followed by a row of
their reconstructions (the `reconstruct` signature). The dataset and its binarization
default to the ones the model was trained on (its metadata.json). Only the SavedModel's
signatures are used, so any tfvae export works, whatever its model class.
"""

import json
import math
import os
import sys

from tfvae.apps import _cli

PROG = "tfvae-sample"


def _main(argv):
    parser = _cli.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="an export of the train app (saved_models/RUN)")
    parser.add_argument("--num", type=int, default=64, help="images (default: 64)")
    parser.add_argument("--out", default="samples.png", help="PNG file (default: samples.png)")
    parser.add_argument("--reconstruct", action="store_true",
                        help="reconstruct dataset images instead of sampling the prior")
    parser.add_argument("--dataset", default=None,
                        help="dataset for --reconstruct (default: the training dataset)")
    parser.add_argument("--split", default="test", choices=("train", "test"),
                        help="split for --reconstruct (default: test)")
    parser.add_argument("--cols", type=int, default=None,
                        help="images per row (default: a square grid; 8 with --reconstruct)")
    parser.add_argument("--seed", type=int, default=None,
                        help="restart the export's random stream at this seed (default: the "
                             "stream a fresh load starts with)")
    args = parser.parse_args(argv)
    if args.num <= 0:
        raise _cli.UsageError(f"`--num` must be a positive int; got {args.num}.")
    if args.cols is not None and args.cols <= 0:
        raise _cli.UsageError(f"`--cols` must be a positive int; got {args.cols}.")
    _cli.check_count(args.num, "--num")
    _cli.check_count(args.cols, "--cols")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise _cli.UsageError(f"`--seed` must be an int in 0..{2**63 - 1}; got {args.seed}.")
    if not os.path.isfile(os.path.join(args.model, "saved_model.pb")):
        raise _cli.UsageError(f"`--model` {args.model!r} is not a SavedModel directory (no "
                              "saved_model.pb); pass saved_models/RUN from the train app.")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    _cli.check_writable_dir(out_dir, "--out")
    metadata = {}
    meta_path = os.path.join(args.model, "metadata.json")
    if os.path.exists(meta_path):
        with _cli.user_errors(f"{meta_path}: "), open(meta_path, encoding="utf-8") as f:
            try:
                metadata = json.load(f)
            except UnicodeDecodeError as e:
                raise ValueError(f"not UTF-8 JSON ({e})") from None
        if not isinstance(metadata, dict):
            raise _cli.UsageError(f"{meta_path} must hold a JSON object; got "
                                  f"{type(metadata).__name__}; re-export the model.")
    _check_memory(args, metadata)

    import numpy as np  # noqa: PLC0415

    from tfvae import callbacks  # noqa: PLC0415
    from tfvae._tf import tf  # noqa: PLC0415

    try:
        model = tf.saved_model.load(args.model)
    except _cli.load_errors() as e:  # a truncated variables file, an unreadable .pb
        raise _cli.UsageError(f"cannot load {args.model!r}: {_cli.one_line(e)} (re-export "
                              "the model)") from None
    needed = "reconstruct" if args.reconstruct else "sample"
    if needed not in model.signatures:
        raise _cli.UsageError(f"{args.model!r} has no {needed!r} signature; it has "
                              f"{sorted(model.signatures)}.")
    if args.seed is not None:
        if not hasattr(model, "reseed"):
            raise _cli.UsageError(f"{args.model!r} cannot be reseeded (exported without "
                                  "`reseed`).")
        model.reseed(tf.constant(args.seed, tf.int64))

    if args.reconstruct:
        x = _dataset_images(args, metadata)
        recon = model.signatures["reconstruct"](x=tf.constant(x))["reconstruction"].numpy()
        cols = args.cols or 8
        grid = callbacks.image_grid(callbacks.interleave_rows(x, recon, cols), cols=cols)
        what = f"{len(x)} {args.split} images and their reconstructions"
    else:
        images = model.signatures["sample"](n=tf.constant(args.num, tf.int32))["images"]
        images = images.numpy()
        cols = args.cols or max(1, math.ceil(math.sqrt(args.num)))
        grid = callbacks.image_grid(images, cols=cols)
        what = f"{args.num} prior samples"
    png = callbacks.encode_png(np.asarray(grid))
    tmp = args.out + ".tmp"
    try:
        with _cli.user_errors(f"cannot write {args.out!r}: "):
            with open(tmp, "wb") as f:
                f.write(png)
            os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):  # a full disk leaves no half-written .tmp behind
            os.remove(tmp)
    print(f"Wrote {args.out}: {what}, a {grid.shape[1]}x{grid.shape[0]} grid.")
    return 0


def _check_memory(args, metadata):
    """Refuses a --num whose images and grid cannot fit in memory, before any allocation."""
    shape = metadata.get("image_shape")
    have = _cli.memory_bytes()
    if not (isinstance(shape, list) and all(isinstance(s, int) for s in shape)) or not have:
        return
    # float32 images, their uint8 grid and the PNG rows: about 4 + 1 + 1 bytes a value
    need = 6 * args.num * math.prod(shape)
    if need > have:
        raise _cli.UsageError(f"`--num` {args.num} images of {shape} need about "
                              f"{need / 2**30:,.1f} GiB but this machine has "
                              f"{have / 2**30:,.1f} GiB; ask for fewer.")


def _dataset_images(args, metadata):
    import numpy as np  # noqa: PLC0415

    import tfvae  # noqa: PLC0415
    dataset_meta = metadata.get("dataset", {})
    name = args.dataset or dataset_meta.get("name")
    if name is None:
        raise _cli.UsageError(f"{args.model!r} has no metadata.json naming its dataset; pass "
                              "--dataset.")
    if name not in tfvae.data.DATASETS:
        raise _cli.UsageError(f"Unknown dataset {name!r}; expected one of "
                              f"{list(tfvae.data.DATASETS)}.")
    with _cli.user_errors():
        images, _ = tfvae.data.load_arrays(name, args.split)
    expected = metadata.get("image_shape")
    if expected is not None and list(images.shape[1:]) != list(expected):
        raise _cli.UsageError(f"{name!r} images are {list(images.shape[1:])} but the model "
                              f"takes {expected}.")
    x = images[:args.num].astype(np.float32) / 255.0
    binarize = dataset_meta.get("binarize", "none")
    if binarize in ("static", "dynamic"):
        # A dynamic-binarization model is shown the static threshold: deterministic inputs.
        x = (x > 0.5).astype(np.float32)
    return x


def main(argv=None):
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
