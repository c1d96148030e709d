"""The attribute-vector indicator of a trained model (Larsen et al. 2016, Sec. 5).

    python -m tfvae.apps.attributes --model saved_models/RUN --attribute sneaker

1. Encodes the training images (`encode`'s loc, its z where there is no loc) and takes the
   attribute vector: mean code of the images with the attribute minus that of those without.
2. Decodes the codes of test images that lack it, shifted by alpha times the vector,
   alpha in --alphas (default 0 0.5 1 1.5 2).
3. A judging classifier, trained on the real training images and cached
   (`tfvae.evaluation.judge`), says which generated images carry the attribute: that share
   is the indicator. The share of the alpha = 0 images still classified as their own
   class is a control of reconstruction quality.

Attributes are classes ("sneaker", "trouser", ...) or groups ("footwear", "top"), see
`tfvae.evaluation.attributes.ATTRIBUTES`. Works for every SavedModel with `encode` and
`decode` signatures. Writes attribute_NAME.json and attribute_NAME.png (rows: images; first
column the input, then one column per alpha) to --out (default evaluations/RUN/).
Exit codes: 0 done, 2 bad input (one line on stderr).
"""

import json
import os

import numpy as np

from tfvae.apps import _cli

PROG = "tfvae-attributes"


def build_parser():
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a SavedModel directory")
    p.add_argument("--attribute", required=True, help="e.g. sneaker, trouser, footwear, top")
    p.add_argument("--dataset", default=None, help="default: the one the model was trained on")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0])
    p.add_argument("--num-images", type=int, default=None,
                   help="use the first N test images that lack the attribute (default: all)")
    p.add_argument("--vector-images", type=int, default=None,
                   help="training images encoded for the vector (default: all)")
    p.add_argument("--judge-epochs", type=int, default=3)
    p.add_argument("--grid-rows", type=int, default=10)
    p.add_argument("--out", default=None, help="default: evaluations/RUN")
    p.add_argument("--seed", type=int, default=0)
    return p


def _check(args):
    for flag in ("num_images", "vector_images", "judge_epochs", "grid_rows"):
        _cli.check_count(getattr(args, flag), "--" + flag.replace("_", "-"))
    _cli.check_seed(args.seed)
    if any(not np.isfinite(a) for a in args.alphas):
        raise _cli.UsageError(f"--alphas must be finite numbers; got {args.alphas}")
    if not os.path.exists(os.path.join(args.model, "saved_model.pb")):
        raise _cli.UsageError(f"--model {args.model!r} is not a SavedModel (no saved_model.pb)")


def load_functions(path):
    """(encode: images -> codes, decode: codes -> images, metadata) of a SavedModel."""
    from tfvae import export
    from tfvae._tf import tf
    meta = export.load_metadata(path)
    loaded = tf.saved_model.load(path)
    missing = [s for s in ("encode", "decode") if s not in loaded.signatures]
    if missing:
        raise ValueError(f"it has no {missing[0]!r} signature")
    enc, dec = loaded.signatures["encode"], loaded.signatures["decode"]

    def encode(x):
        out = enc(x=tf.constant(x, tf.float32))
        return (out["loc"] if "loc" in out else out["z"]).numpy()

    def decode(z):
        return dec(z=tf.constant(z, tf.float32))["mean"].numpy()
    return encode, decode, meta, loaded


def model_inputs(images, binarize, seed):
    """uint8 images as the model saw them in training: grey levels, or binarized."""
    x = images.astype(np.float32) / 255.0
    if binarize == "static":
        return (x > 0.5).astype(np.float32)
    if binarize == "dynamic":
        return (np.random.default_rng(seed).uniform(size=x.shape) < x).astype(np.float32)
    return x


def _main(argv):
    args = build_parser().parse_args(argv)
    _check(args)
    with _cli.user_errors(f"cannot load --model {args.model!r}: "):
        try:
            encode, decode, meta, _keep = load_functions(args.model)
        except _cli.load_errors() as e:
            raise _cli.UsageError(f"cannot load --model {args.model!r}: {_cli.one_line(e)}") \
                from None
    from tfvae import data as data_lib
    from tfvae.evaluation import attributes, judge as judge_lib
    trained_on = meta.get("dataset") or {}
    dataset = args.dataset or trained_on.get("name") or "fashion_mnist"
    binarize = trained_on.get("binarize")
    with _cli.user_errors():
        wanted = attributes.attribute_classes(dataset, args.attribute)
        shape = tuple(meta.get("image_shape") or (28, 28, 1))
        x_train, y_train = data_lib.load_arrays(dataset, "train", image_shape=shape)
        x_test, y_test = data_lib.load_arrays(dataset, "test", image_shape=shape)
    out_dir = _cli.check_writable_dir(
        args.out or os.path.join("evaluations", os.path.basename(os.path.normpath(args.model))),
        "--out")
    judge = judge_lib.train_judge(x_train, y_train, x_test, y_test,
                                  int(max(y_train.max(), y_test.max())) + 1, dataset,
                                  epochs=args.judge_epochs, seed=args.seed, log=print)
    n_vec = args.vector_images or len(x_train)
    codes = np.concatenate([encode(model_inputs(x_train[i:i + 500], binarize, args.seed + i))
                            for i in range(0, n_vec, 500)])
    with _cli.user_errors():
        vector = attributes.attribute_vector(codes, np.isin(y_train[:n_vec], wanted))
    lack = ~np.isin(y_test, wanted)
    start, labels = x_test[lack][:args.num_images], y_test[lack][:args.num_images]
    result = attributes.indicator(encode, decode, judge.predict,
                                  model_inputs(start, binarize, args.seed), labels, vector,
                                  wanted, alphas=args.alphas)
    n = result["num_images"]
    report = {"attribute": args.attribute, "classes": list(wanted), "dataset": dataset,
              "model": os.path.abspath(args.model),
              "ratio": {str(a): r for a, r in result["ratio"].items()},
              "control_same_class_at_alpha_0": result["control"], "num_images": n,
              "vector_images": int(n_vec), "vector_norm": float(np.linalg.norm(vector)),
              "judge_test_accuracy": judge.test_accuracy,
              "note": "ratio: share of decoded (code + alpha * vector) images of test images "
                      "lacking the attribute that the judging classifier assigns to its "
                      "classes; exact for these images, binomial standard error "
                      "sqrt(r(1-r)/n) as an estimate of the model's rate."}
    print(f"judging classifier test accuracy {judge.test_accuracy:.4f}; attribute "
          f"{args.attribute!r} = classes {list(wanted)}; {n} test images lacking it")
    for alpha, r in result["ratio"].items():
        se = np.sqrt(r * (1 - r) / max(n, 1))
        print(f"alpha {alpha:4.1f}: {r:.4f} classified as {args.attribute} (+- {se:.4f})")
    if result["control"] is not None:
        print(f"control: {result['control']:.4f} of the alpha=0 images keep their own class")
    with _cli.user_errors(f"cannot write to --out {out_dir!r}: "):
        _write(out_dir, args, report, model_inputs(start, binarize, args.seed), result)
    print(f"wrote {os.path.join(out_dir, f'attribute_{args.attribute}.json')} and its grid")
    return 0


def _write(out_dir, args, report, inputs, result):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tfvae.callbacks import image_grid
    rows = min(args.grid_rows, len(inputs))
    columns = [inputs[:rows]] + [imgs[:rows] for imgs in result["images"].values()]
    tiles = np.stack(columns, axis=1).reshape(-1, *inputs.shape[1:])
    grid = image_grid(tiles, cols=len(columns))
    plt.imsave(os.path.join(out_dir, f"attribute_{args.attribute}.png"),
               grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1)
    path = os.path.join(out_dir, f"attribute_{args.attribute}.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    os.replace(path + ".tmp", path)


def main(argv=None):
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
