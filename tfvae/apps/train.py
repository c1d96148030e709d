"""Train a model, log it to TensorBoard, checkpoint it, export a SavedModel.

    python -m tfvae.apps.train                       # full-covariance VAE on Fashion-MNIST
    python -m tfvae.apps.train --config apps/vae_normal.toml --epochs 20
    python -m tfvae.apps.train --model NAME --help   # NAME's arguments as flags too
    python -m tfvae.apps.train --set posterior.offdiag_scale=1e-2 --set model.latent_dim=16

Defaults: Fashion-MNIST binarized at 0.5 (the benchmark protocol's FMNIST-bin), a VAE with
a full-covariance Gaussian posterior and a Bernoulli decoder, latent 32, MLP 784-512-256,
Adam 1e-3, batch 128, 10 epochs, the KL weight warmed up from 0 over the first half of the
run (`--kl-warmup`), the train step XLA-compiled. Settings come from `--set`
and the flags, then the `--config` TOML preset (run settings at its top level, the model in
its [model], [posterior], [likelihood], [prior] tables and [[terms]]; see `tfvae.recipe`),
then the defaults.

Outputs, for run NAME (default: derived from the settings, so the same command finds the
same run):

```none
runs/NAME/run.json                 the settings that define the run (checked on resume)
runs/NAME/checkpoints/             model + optimizer + RNG + epoch/step counters
runs/NAME/train, runs/NAME/validation   TensorBoard scalars, images, histograms
runs/NAME/projector_config.pbtxt   the embedding projector (test latents with labels)
saved_models/NAME/                 SavedModel (see tfvae.export) + metadata.json
```

Resuming: re-running a killed command restores the last checkpoint (epoch end, or every
`--checkpoint-every-steps` steps) and trains exactly the missing steps: each epoch's data
order is a function of (seed, epoch) and a run stopped mid-epoch skips the batches it
already trained. `--fresh` deletes the run's checkpoints and logs first.

Hooks (no edit here needed for a new component): every registered model, posterior,
likelihood, prior and term is selectable by name, its constructor arguments are preset keys
and `--set` paths (a model's are flags too); `tfvae.callbacks.register_callback` adds Keras
callbacks (see tfvae/callbacks/).

Exit codes: 0 done, 2 bad input (one line on stderr), 130 interrupted (resume by
re-running).
"""

import json
import sys

from tfvae.apps import _cli
from tfvae.apps._train_args import PROG, build_parser, check_model_size, parse  # noqa: F401

#: public names of the run (`tfvae.apps._training`), imported on first use (PEP 562), so
#: that `--help` and argument errors are answered before TensorFlow is imported
_RUN_NAMES = ("train", "Result", "SUMMARY_IMAGES", "callbacks_lib", "export", "Data",
              "EpochTimer", "summary", "build_model", "dry_run", "RUN_FILE",
              "default_run_name", "load_run", "prepare_run_dir", "remove_partial_checkpoints",
              "run_identity", "tensorboard_app")


def __getattr__(name):
    if name not in _RUN_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from tfvae.apps import _training  # noqa: PLC0415
    value = getattr(_training, name)
    globals()[name] = value
    return value


def _main(argv):
    cfg, recipe, args = parse(argv)
    from tfvae.apps._training import dry_run, summary, tensorboard_app, train  # noqa: PLC0415
    _cli.check_writable_dir(cfg.logdir, "--logdir")
    _cli.check_writable_dir(cfg.export_dir, "--export-dir")
    if cfg.dry_run:
        print(json.dumps(dry_run(cfg, recipe), indent=2, default=str))
        return 0
    with _cli.write_errors(f"cannot write under --logdir {cfg.logdir!r}: ",
                           "; free some space, then re-run the same command to resume"):
        result = train(cfg, recipe, out=lambda s: print(s, flush=True))
    print(summary(cfg, result), flush=True)
    if result.url:
        print(f"TensorBoard is still serving at {result.url}; press Ctrl-C to stop.",
              flush=True)
        tensorboard_app.serve_forever()
    return 0


def main(argv=None):
    """Console entry point (`tfvae-train`); returns the exit code."""
    return _cli.run_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
