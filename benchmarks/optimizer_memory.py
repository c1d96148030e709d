"""What the optimizer update costs XLA's first compilation of the main job's train step.

    python benchmarks/optimizer_memory.py                      # every variant, 2 rounds
    python benchmarks/optimizer_memory.py --rounds 3 --epochs 3
    python benchmarks/optimizer_memory.py --variant keras --epochs 1
    python benchmarks/optimizer_memory.py --speed              # FlatAdam vs Adam, img/s

Runs the main job (`memory_profile.py`: the train app's defaults in-process, peak RSS by
phase, exact) once per variant in a fresh process, the variants alternating within each
round, and prints one result line per run and a summary (median over rounds) at the end.
The variants differ only in the optimizer and in how the step guard
(`tfvae.models._guarded.apply_if_finite`) applies it:

```none
flat_adam    the app's step: tfvae.optimizers.FlatAdam (Adam with both moments in two flat
             vectors), a skipped step a select on them
keras        tf_keras Adam, one update per variable, inside the guard's cond that skips the
             step when the loss or a gradient is not finite (the app's step before FlatAdam)
unguarded    tf_keras Adam without the cond (a non-finite step would be applied)
no_update    no optimizer update at all (the gradients feed the finiteness check only):
             the floor of what the update can cost
```
The test ELBO of each run (`test_elbo`) shows whether they train alike: FlatAdam's
arithmetic is tf_keras Adam's, so the runs' ELBOs agree to float32 round-off.

`--speed` compares the two optimizers' train steps in one process instead, as
`finite_check.py` compares two checks: the protocol's model (MLP 784-512-256, latent 32,
full covariance, Bernoulli, XLA, 16 steps per call) built twice, one per optimizer, and
`fit` timed on the same random binary images in alternating rounds, so that a burst of load
on a shared machine hits both alike, and a third time with FlatAdam and no step guard (a
non-finite step would be applied): what the guard costs. One result line: each variant's
images/s in its best and its median round, and the medians of the per-round speed ratios
to Adam's (FlatAdam's, and the unguarded FlatAdam's).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report, run_script  # noqa: E402

VARIANTS = ("flat_adam", "keras", "unguarded", "no_update")


def install(variant):
    """Sets the app's optimizer and the guard's update for `variant`."""
    from tfvae._tf import tfk  # noqa: PLC0415
    from tfvae.apps import _train_controls  # noqa: PLC0415
    from tfvae.models import _guarded  # noqa: PLC0415
    if variant == "flat_adam":
        return
    _train_controls.optimizer = lambda cfg, total_steps: tfk.optimizers.Adam(
        _train_controls.learning_rate(cfg, total_steps), global_clipnorm=cfg.clipnorm)
    if variant == "keras":
        return

    def apply_if_finite(optimizer, loss, grads, variables):
        finite = _guarded._all_finite(loss, grads)  # noqa: SLF001
        if variant == "unguarded":
            optimizer.apply_gradients(zip(grads, variables), skip_gradients_aggregation=True)
        else:  # no_update
            optimizer.iterations.assign_add(1)
        return finite
    _guarded.apply_if_finite = apply_if_finite


def run_one(variant, epochs, extra):
    from tfvae.apps import _cli  # noqa: PLC0415
    capped = _cli.limit_malloc_arenas()  # before `install` imports TensorFlow
    install(variant)
    from benchmarks import memory_profile  # noqa: PLC0415
    row = memory_profile.main(["--epochs", str(epochs), "--", *extra])
    row["malloc_arenas"] = _cli.MALLOC_ARENAS if capped else "glibc default"
    report(contender=f"optimizer_{variant}", variant=variant, **{
        k: v for k, v in row.items() if k != "contender"})


def time_steps(rounds, steps):
    from tfvae.apps import _cli  # noqa: PLC0415
    _cli.limit_malloc_arenas()
    from benchmarks import _interleaved  # noqa: PLC0415
    from tfvae._tf import tfk  # noqa: PLC0415
    from tfvae.optimizers import FlatAdam  # noqa: PLC0415
    from tfvae.models import _guarded  # noqa: PLC0415
    ds = _interleaved.random_binary_batches()
    models = {"flat_adam": _interleaved.protocol_model(FlatAdam(1e-3)),
              "keras": _interleaved.protocol_model(tfk.optimizers.Adam(1e-3))}
    _interleaved.compile_all(models, ds)

    def unguarded(optimizer, loss, grads, variables):
        optimizer.apply_gradients(zip(grads, variables))
        return True
    # The guard's cost: FlatAdam's step traced without it.
    models["flat_adam_unguarded"] = _interleaved.traced_with(
        _guarded, "apply_if_finite", unguarded, _interleaved.protocol_model(FlatAdam(1e-3)), ds)
    rates = _interleaved.time_rounds(models, ds, rounds, steps, "keras")
    report(benchmark="optimizer_speed", rounds=rounds, steps_per_round=steps,
           best_images_per_s=rates["best_images_per_s"],
           median_images_per_s=rates["median_images_per_s"],
           median_speed_ratio=rates["median_speed_ratio"]["flat_adam"],
           median_speed_ratio_unguarded=rates["median_speed_ratio"]["flat_adam_unguarded"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=VARIANTS, help="run this one variant in this process")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated variants to compare (default: all)")
    p.add_argument("--speed", action="store_true",
                   help="time FlatAdam's and Adam's train steps in one process instead")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds (default: 2; with --speed, 24 of --speed-steps steps)")
    p.add_argument("--speed-steps", type=int, default=96,
                   help="steps per --speed round (a multiple of 16)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps-per-epoch", type=int, default=64,
                   help="the app's --steps-per-epoch (the first call is what is measured; "
                        "0: whole epochs, for images/s with --epochs 3 or more)")
    args = p.parse_args(argv)
    if args.speed:
        time_steps(args.rounds or 24, args.speed_steps)
        return
    args.rounds = args.rounds or 2
    extra = ["--steps-per-epoch", str(args.steps_per_epoch)] if args.steps_per_epoch else []
    if args.variant:
        run_one(args.variant, args.epochs, extra)
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    rows = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            rows[variant].append(run_script(
                [os.path.abspath(__file__), "--variant", variant, "--epochs", str(args.epochs),
                 "--steps-per-epoch", str(args.steps_per_epoch)]))
    print(f"{'variant':12s} {'first call peak MB':>30s} {'end RSS MB':>22s} {'img/s':>8s} "
          f"{'test ELBO':>10s}")
    for variant, runs in rows.items():
        first = [r["peak_rss_by_phase_mb"]["first_step"] for r in runs]
        end = [r["rss_mb"]["end"] for r in runs]
        speed = statistics.median(r["train_images_per_s"] for r in runs)
        print(f"{variant:12s} {' / '.join(f'{x:,.0f}' for x in first):>30s} "
              f"{' / '.join(f'{x:,.0f}' for x in end):>22s} {speed:8,.0f} "
              f"{statistics.median(r['test_elbo'] for r in runs):10.2f}")


if __name__ == "__main__":
    main()
