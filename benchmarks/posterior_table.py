"""Posterior families on FMNIST-bin, one table: diagonal, full covariance, IAF (2 and 4 steps).

    nice -n 10 .venv/bin/python benchmarks/posterior_table.py      # the train app's recipe
    .venv/bin/python benchmarks/posterior_table.py --variants "default,no warm-up"
    .venv/bin/python benchmarks/posterior_table.py --quick                 # plumbing only

Every row is `benchmarks/protocol.py --config PRESET --set ...` in its own process (so its
peak RSS is its own), built, compiled and optimized as the train app builds them from the
presets in apps/ (vae.toml; vae_iaf.toml: a full-covariance base, gated steps, MADE
256-256, context 64; the last two rows change one of those), on DESIGN.md's protocol: Fashion-MNIST 60k/10k thresholded at 0.5,
Bernoulli decoder, latent 32, MLP 784-512-256, Adam 1e-3, batch 128, 10 epochs. Columns:

```none
test -ELBO  the whole test set; exact in expectation for the Gaussian heads, a Monte-Carlo
            rate (log q - log p at one z per image) for IAF: an unbiased estimate of the bound
test NLL    -log p(x) by importance sampling with q(z|x) as proposal, k = 1000, first 1000
            test images: an estimate biased upward (a stochastic upper bound on the NLL)
img/s       training images/s, the median epoch after the first
peak RSS    the contender process's maximum resident set, MB
```
A variant changes the recipe for every posterior. `default` is the train app's: Adam 1e-3
constant, the KL weight warmed up from 0 over the first half of the run (`kl_warmup`);
`no warm-up` is the plain protocol (the KL weight 1 throughout); `warm-up 0.2` warms up over
the first fifth. Without warm-up, `cosine` decays the rate to 0 over the run;
`warmup_cosine` warms the rate up over one epoch first; `constant 2e-3` and `constant 3e-3`
raise it; `warmup_cosine 3e-3` warms up to 3e-3.
The machine may be shared: images/s are comparable only within one run.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from benchmarks import common  # noqa: E402
from benchmarks import run as run_lib  # noqa: E402

PROTOCOL = os.path.join(HERE, "protocol.py")
#: row name -> (preset, --set overrides)
POSTERIORS = {
    "diagonal": ("vae.toml", ["posterior.name=diagonal"]),
    "full covariance": ("vae.toml", []),
    "IAF 2 steps": ("vae_iaf.toml", ["posterior.num_steps=2"]),
    "IAF 4 steps": ("vae_iaf.toml", ["posterior.num_steps=4"]),
    "IAF 2 steps ungated": ("vae_iaf.toml", ["posterior.num_steps=2", "posterior.gated=false"]),
    "IAF 2 steps diagonal base": ("vae_iaf.toml", ["posterior.num_steps=2",
                                                   "posterior.base=\"diagonal\""]),
}
VARIANTS = {
    "default": [],
    "no warm-up": ["kl_warmup=0"],
    "warm-up 0.2": ["kl_warmup=0.2"],
    "cosine": ["kl_warmup=0", "lr_schedule=\"cosine\""],
    "warmup_cosine": ["kl_warmup=0", "lr_schedule=\"warmup_cosine\"", "lr_warmup_steps=469"],
    "constant 2e-3": ["kl_warmup=0", "learning_rate=2e-3"],
    "constant 3e-3": ["kl_warmup=0", "learning_rate=3e-3"],
    "warmup_cosine 3e-3": ["kl_warmup=0", "learning_rate=3e-3",
                           "lr_schedule=\"warmup_cosine\"", "lr_warmup_steps=469"],
}


def table(rows):
    k = rows[0]["nll_samples"]
    lines = ["| posterior | optimizer | test -ELBO | test NLL (k=%s) | train img/s | peak RSS MB |"
             % k, "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['posterior']} | {r['variant']} | {r['test_neg_elbo']:.2f} | "
                     f"{r['test_nll']:.2f} | {r['train_images_per_s']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--posteriors", default=",".join(POSTERIORS),
                   help=f"comma-separated subset of {list(POSTERIORS)}")
    p.add_argument("--variants", default="default",
                   help=f"comma-separated subset of {list(VARIANTS)}")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--nll-samples", type=int, default=1000)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--quick", action="store_true",
                   help="synthetic data (512 images), 2 epochs, k=10 on 20 images")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "posterior_table"))
    args = p.parse_args(argv)
    posteriors = [n.strip() for n in args.posteriors.split(",") if n.strip()]
    variants = [n.strip() for n in args.variants.split(",") if n.strip()]
    bad = sorted(set(posteriors) - set(POSTERIORS)) + sorted(set(variants) - set(VARIANTS))
    if bad:
        p.error(f"unknown names {bad}; posteriors {list(POSTERIORS)}, variants "
                f"{list(VARIANTS)}")
    shared = ["--epochs", str(args.epochs), "--nll-samples", str(args.nll_samples),
              "--nll-examples", str(args.nll_examples)]
    if args.quick:
        shared = ["--dataset", "synthetic", "--limit", "512", "--epochs", "2",
                  "--nll-samples", "10", "--nll-examples", "20"]
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for variant in variants:
        for name in posteriors:
            preset, sets = POSTERIORS[name]
            argv = [PROTOCOL, "--config", os.path.join(ROOT, "apps", preset),
                    "--label", f"{name} / {variant}", *shared]
            for item in sets + VARIANTS[variant]:
                argv += ["--set", item]
            print(f"running {name} / {variant} ...", file=sys.stderr, flush=True)
            row = run_lib._run(name, argv, timeout=3600)
            row.update(posterior=name, variant=variant, argv=argv[1:])
            rows.append(row)
            common.append_row(args.out, row, sys.stderr)
    common.write_table(args.out, table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
