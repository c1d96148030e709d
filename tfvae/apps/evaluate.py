"""Evaluate a trained model: importance-weighted NLL, the ELBO's parts, and figures.

    python -m tfvae.apps.evaluate --model saved_models/RUN --dataset fashion_mnist \\
        --split test --num-samples 1000

`--model` is a SavedModel written by `tfvae.apps.train` / `tfvae.export.save` (the model is
rebuilt from its metadata.json and given the exported weights), or a training run directory
`runs/RUN` (its latest checkpoint). Prints, and writes to `--out` (default:
`evaluations/RUN/` in the current directory, outside the export, so re-training or
re-exporting RUN never deletes its results); all files or none (a full disk leaves `--out`
as it was):

```none
evaluation.json   neg_elbo, nll (nats per example), bits_per_dim, kl, reconstruction,
                  active_units (Burda et al.'s Cov_x E[z|x] > 0.01 criterion),
                  reconstruction_mse (per pixel), and the settings
disentanglement   with --disentanglement: MIG, Chen et al.'s MIG, the FactorVAE score,
                  DCI and SAP, and the factor each latent dim carries most of
*.png             the figures of `tfvae.apps._figures` (reconstructions, samples,
                  labelled traversals, the latent map with class names)
```
The NLL is -log p(x) estimated with k importance samples (`tfvae.evaluation.log_likelihood`),
a stochastic upper bound on the true NLL that tightens as k grows; bits/dim divides it by
(pixels x ln 2). Exit codes: 0 done, 2 bad input (one line on stderr).
"""

import json
import math
import os
import shutil
import tempfile
import time

import numpy as np

from tfvae.apps import _cli
from tfvae.apps._load import load, load_saved_model  # noqa: F401  (public)

PROG = "tfvae-evaluate"


def build_parser():
    p = _cli.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True,
                   help="a SavedModel directory from tfvae.apps.train, or a run directory")
    p.add_argument("--dataset", default=None,
                   help="default: the dataset the model was trained on")
    p.add_argument("--split", default="test", help="train or test")
    p.add_argument("--num-samples", type=int, default=1000, help="k importance samples")
    p.add_argument("--num-examples", type=int, default=None,
                   help="evaluate the first N examples of the split (default: all)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--out", default=None,
                   help="output folder (default: evaluations/RUN, RUN the --model folder's name)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--inference-gaps", type=int, default=0, metavar="N",
                   help="also report the amortization and approximation gaps (Cremer et al. "
                        "2018) on the first N images: a full-covariance q refined per image "
                        "with the decoder fixed (tfvae.latent.refine_posterior); Gaussian "
                        "posteriors only (default: 0, off)")
    p.add_argument("--frechet-samples", type=int, default=0, metavar="N",
                   help="also report the Fréchet distance of N prior samples to the test "
                        "images in the features of a judging classifier trained on the real "
                        "training images and cached (a Fashion-MNIST-feature Fréchet distance "
                        "for fashion_mnist, not FID); 10000 for the documented score "
                        "(default: 0, off)")
    p.add_argument("--disentanglement", nargs="?", const="full", choices=("full", "quick"),
                   help="also score disentanglement on the dataset's ground-truth factors "
                        "(dsprites): MIG, Chen et al.'s MIG, the FactorVAE score, DCI and SAP "
                        "at disentanglement_lib's sample sizes (full, ~25 min for the dSprites "
                        "conv model on 2 cores) or reduced ones (quick, a few minutes)")
    p.add_argument("--refine-steps", type=int, default=300,
                   help="Adam steps of each per-image refinement (default: 300)")
    return p


def _check(args):
    if args.num_samples <= 0:
        raise _cli.UsageError(f"--num-samples must be a positive int; got {args.num_samples}")
    if args.batch_size <= 0:
        raise _cli.UsageError(f"--batch-size must be a positive int; got {args.batch_size}")
    if args.num_examples is not None and args.num_examples <= 0:
        raise _cli.UsageError(f"--num-examples must be a positive int; got {args.num_examples}")
    _cli.check_count(args.num_samples, "--num-samples")
    _cli.check_count(args.batch_size, "--batch-size")
    _cli.check_count(args.num_examples, "--num-examples")
    _cli.check_seed(args.seed)
    if args.inference_gaps < 0 or args.refine_steps <= 0:
        raise _cli.UsageError("--inference-gaps must be >= 0 and --refine-steps positive; got "
                              f"{args.inference_gaps} and {args.refine_steps}")
    if args.inference_gaps:
        _cli.check_count(args.inference_gaps, "--inference-gaps")
    _cli.check_count(args.refine_steps, "--refine-steps")
    if args.frechet_samples and not 2 <= args.frechet_samples <= _cli.MAX_INT32:
        raise _cli.UsageError(f"--frechet-samples must be 0 (off) or an int >= 2; got "
                              f"{args.frechet_samples}")
    if args.split not in ("train", "test"):
        raise _cli.UsageError(f"unknown --split {args.split!r}; expected 'train' or 'test'")
    if not os.path.exists(args.model):
        raise _cli.UsageError(f"--model {args.model!r} does not exist")
    if not os.path.isdir(args.model):
        raise _cli.UsageError(f"--model {args.model!r} is not a directory")


def _progress(total, label):
    from tfvae._tf import tfk
    return tfk.utils.Progbar(total, unit_name=label)


def evaluate(model, x, labels, num_samples, batch_size, seed):
    """All numbers of evaluation.json; x [N, H, W, C] in [0, 1]."""
    from tfvae import evaluation
    from tfvae.callbacks import posterior_moments
    from tfvae.evaluation.decomposition import active_units

    n = len(x)
    sums = {}
    bar = _progress(n, "image")
    log_px = []
    # A point mass offers no importance distribution: no NLL, only what it has.
    # A model may also say why its log p(x) means nothing (VAE-GAN: no pixel density).
    estimate_nll = bool(model.posterior.has_proposal) and \
        not getattr(model, "log_likelihood_unavailable", None)
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        xb = x[start:start + batch_size]
        losses = model.compute_losses(xb)
        for key in ("elbo", "kl", "reconstruction"):
            if key in losses:
                sums[key] = sums.get(key, 0.0) + float(losses[key]) * len(xb)
        if estimate_nll:
            log_px.append(evaluation.log_likelihood(model, xb, num_samples=num_samples,
                                                    batch_size=batch_size, seed=seed + start))
        bar.add(len(xb))
    seconds = time.perf_counter() - t0
    pixels = int(np.prod(x.shape[1:]))
    means, stds = posterior_moments(model, x, seed=seed)
    recon = np.concatenate([model(x[s:s + batch_size]).numpy()
                            for s in range(0, n, batch_size)])
    out = {"active_units": active_units(means), "active_unit_threshold": 0.01,
           "reconstruction_mse": float(np.mean((recon - x) ** 2)),
           "latent_dim": int(model.latent_dim), "seconds": round(seconds, 2),
           "images_per_s": n / seconds}
    if estimate_nll:
        nll = float(-np.mean(np.concatenate(log_px)))
        out.update(nll=nll, bits_per_dim=nll / (pixels * math.log(2)))
    for key, value in sums.items():
        out[key] = value / n
    if "elbo" in out:
        out["neg_elbo"] = -out.pop("elbo")
    return out, (means, stds), recon


def default_out(model_path):
    """`evaluations/RUN` for `--model .../RUN`: outside the export, which a re-run of the
    train app replaces."""
    return os.path.join("evaluations", os.path.basename(os.path.normpath(model_path)))


def write_outputs(model, x, labels, moments, recon, numbers, out_dir, seed, label_names=None):
    """The figures and evaluation.json, all or nothing: written into a temporary folder
    inside `out_dir`, then moved into place with evaluation.json last. On any error (a full
    disk) the temporary folder is removed and `out_dir` keeps what it had."""
    tmp = tempfile.mkdtemp(dir=out_dir, prefix=".evaluation.tmp-")
    try:
        from tfvae.apps import _figures
        factors = (numbers.get("disentanglement") or {}).get("dimension_factors")
        _figures.write_figures(model, x, labels, *moments, recon, tmp, seed,
                               label_names=label_names, dimension_factors=factors)
        with open(os.path.join(tmp, "evaluation.json"), "w") as f:
            json.dump(numbers, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        names = sorted(os.listdir(tmp), key=lambda n: n == "evaluation.json")
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _main(argv):
    args = build_parser().parse_args(argv)
    _check(args)
    out_dir = args.out or default_out(args.model)
    created = not os.path.exists(out_dir)
    _cli.check_writable_dir(out_dir, "--out")
    try:
        return _evaluate(args, out_dir)
    except BaseException:
        if created:  # a failed first evaluation leaves no empty --out behind
            shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _evaluate(args, out_dir):
    from tfvae import data as data_lib
    from tfvae._tf import tfk
    from tfvae.apps import _train_data
    tfk.utils.set_random_seed(args.seed)
    model, meta = load(args.model)
    trained_on = meta.get("dataset") or {}
    dataset = args.dataset or trained_on.get("name") or "fashion_mnist"
    binarize = {"none": None}.get(trained_on.get("binarize"), trained_on.get("binarize"))
    with _cli.user_errors():
        images, labels = data_lib.load_arrays(dataset, args.split,
                                              image_shape=tuple(model.image_shape))
    if list(images.shape[1:]) != list(model.image_shape):
        raise _cli.UsageError(f"{dataset!r} images are {list(images.shape[1:])} but the model "
                              f"takes {list(model.image_shape)}; pass the --dataset it was "
                              "trained on.")
    if args.num_examples:
        images, labels = images[:args.num_examples], labels[:args.num_examples]
    x = images.astype(np.float32) / 255.0
    if binarize == "static":
        x = (x > 0.5).astype(np.float32)
    elif binarize == "dynamic":
        # A model trained on fresh draws is scored on one fixed, seeded draw.
        x = (np.random.default_rng(args.seed).uniform(size=x.shape) < x).astype(np.float32)
    print(f"evaluating {args.model} on {dataset}/{args.split}: {len(x)} images, "
          f"k={args.num_samples}", flush=True)
    numbers, means, recon = evaluate(model, x, labels, args.num_samples, args.batch_size,
                                     args.seed)
    numbers.update({"model": os.path.abspath(args.model), "dataset": dataset,
                    "split": args.split, "binarize": binarize, "num_examples": len(x),
                    "num_samples": args.num_samples, "seed": args.seed})
    if args.frechet_samples:
        from tfvae.evaluation import frechet
        with _cli.user_errors("cannot compute the Fréchet distance: "):
            numbers["frechet"] = frechet.model_frechet(model, dataset, args.frechet_samples,
                                                       args.seed, log=print)
        print(f"{numbers['frechet']['label']} {numbers['frechet']['frechet']:.2f} "
              f"({args.frechet_samples} prior samples vs the test images; an estimate)")
    if args.inference_gaps:
        numbers["inference_gaps"] = inference_gaps(model, x[:args.inference_gaps], args)
    if args.disentanglement:
        from tfvae.apps import _disentanglement
        with _cli.user_errors("--disentanglement: "):
            numbers["disentanglement"] = _disentanglement.scores(
                model, dataset, args.seed, quick=args.disentanglement == "quick")
        print(_disentanglement.summary_line(numbers["disentanglement"]), flush=True)
    path = os.path.join(out_dir, "evaluation.json")
    with _cli.user_errors(f"cannot write the results to --out {out_dir!r}: "):
        write_outputs(model, x, labels, means, recon, numbers, out_dir, args.seed,
                      label_names=_train_data.LABEL_NAMES.get(dataset))
    neg_elbo = numbers.get("neg_elbo")
    print((f"NLL {numbers['nll']:.2f} nats ({numbers['bits_per_dim']:.4f} bits/dim), an "
           "importance-sampling estimate" if "nll" in numbers else
           ("NLL: not estimated (the model has no density on pixels)" if getattr(
               model, "log_likelihood_unavailable", None) else "NLL: not estimated (the "
            "posterior is a point mass: no importance distribution)"))
          + (f", -ELBO {neg_elbo:.2f}" if neg_elbo is not None else "")
          + (f", KL {numbers['kl']:.2f}" if "kl" in numbers else "")
          + f", active units {numbers['active_units']}/{numbers['latent_dim']}")
    for name, entry in numbers.get("inference_gaps", {}).items():
        if isinstance(entry, dict):
            print(f"{name}: {entry['mean']:.2f} nats per image ({entry['kind']})")
    print(f"wrote {path} and figures in {out_dir}")
    return 0


def inference_gaps(model, x, args):
    """{name: {"mean", "kind"}} of `tfvae.latent.refine_posterior` over `x`, in batches."""
    from tfvae.latent import refine
    batch = max(1, min(args.batch_size, 50))
    parts = {k: [] for k in refine.KINDS}
    with _cli.user_errors("--inference-gaps: "):
        for start in range(0, len(x), batch):
            gaps = refine.refine_posterior(
                model, x[start:start + batch], steps=args.refine_steps,
                iwae_samples=args.num_samples, eval_samples=args.num_samples,
                seed=args.seed + start)
            for key in parts:
                parts[key].append(np.asarray(getattr(gaps, key)))
    out = {k: {"mean": float(np.mean(np.concatenate(v))), "kind": refine.KINDS[k]}
           for k, v in parts.items()}
    out["num_examples"] = int(len(x))
    out["refine_steps"] = int(args.refine_steps)
    return out


def main(argv=None):
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
