"""What an XLA flag does to the main job's train step: its first call's memory and its speed.

    python benchmarks/xla_flags.py                  # default vs the new fusion emitters off
    python benchmarks/xla_flags.py --rounds 3 --flags "" "--xla_cpu_max_isa=AVX2"

XLA reads XLA_FLAGS once per process, so each setting runs in a fresh process, the settings
alternating within each of `--rounds` rounds (a burst of load on a shared machine then hits
all of them). Each process builds the train app's model for the main job (its defaults:
MLP 784-512-256, latent 32, full covariance, Bernoulli, FlatAdam, XLA, 16 steps per call)
without loading data, and prints one result line:

```none
rss_mb           VmRSS before and after the first train call (tracing and XLA's compilation
                 of the step; malloc arenas capped as the apps cap them), exact
images_per_s     the compiled step on random binary images in `--steps` rounds of 96 steps:
                 the best and the median round
```
then a summary per setting: the first call's growth and the best and median round, as
medians over the processes.
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import report, run_script  # noqa: E402

DEFAULT_FLAGS = ("", "--xla_backend_extra_options=xla_cpu_disable_new_fusion_emitters=1")
STEPS_PER_ROUND = 96


def one(timing_rounds):
    """Builds and compiles the main job's step in this process; returns its result row."""
    from tfvae.apps import _cli  # noqa: PLC0415  (imports no TensorFlow)
    _cli.limit_malloc_arenas()
    import numpy as np  # noqa: PLC0415
    from benchmarks.memory_profile import memory_mb  # noqa: PLC0415
    from tfvae._tf import tf, tfk  # noqa: PLC0415
    from tfvae.apps import _build, _train_controls  # noqa: PLC0415
    from tfvae.apps import train as train_app  # noqa: PLC0415

    cfg, recipe, _ = train_app.parse(["--verbose", "0"])

    class Shape:  # what build_model reads of the data: Fashion-MNIST's, none loaded
        image_shape, num_train, steps_per_epoch = (28, 28, 1), 55_000, 429
        test_images = np.zeros((2, 28, 28, 1), np.float32)

    tfk.utils.set_random_seed(cfg.seed)
    model = _build.build_model(cfg, recipe, Shape)
    model.compile(optimizer=_train_controls.optimizer(cfg, cfg.epochs * Shape.steps_per_epoch),
                  jit_compile="auto" if cfg.jit else False,
                  steps_per_execution=cfg.steps_per_execution)
    x = (np.random.default_rng(0).random((4096, 28, 28, 1)) < 0.3).astype(np.float32)
    batches = iter(tf.data.Dataset.from_tensor_slices(x).batch(cfg.batch_size, True)
                   .repeat().prefetch(4))
    train = model.make_train_function()
    before = memory_mb()[0]
    train(batches)
    after = memory_mb()[0]
    calls = STEPS_PER_ROUND // cfg.steps_per_execution
    speeds = []
    for _ in range(timing_rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            logs = train(batches)
        float(logs["loss"])  # waits for the last call
        speeds.append(STEPS_PER_ROUND * cfg.batch_size / (time.perf_counter() - t0))
    return dict(xla_flags=os.environ.get("XLA_FLAGS", ""), rss_mb=[before, after],
                first_call_mb=round(after - before, 1),
                images_per_s=[round(max(speeds)), round(statistics.median(speeds))])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flags", nargs="+", default=list(DEFAULT_FLAGS),
                   help='XLA_FLAGS per setting ("" for none)')
    p.add_argument("--rounds", type=int, default=3, help="processes per setting")
    p.add_argument("--steps", type=int, default=15, help="timed rounds of 96 steps")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        report(**one(args.steps))
        return
    rows = {flags: [] for flags in args.flags}
    for _ in range(args.rounds):
        for flags in args.flags:
            env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
            if flags:
                env["XLA_FLAGS"] = flags
            rows[flags].append(run_script(
                [os.path.abspath(__file__), "--one", "--steps", str(args.steps)], env=env))
    for flags, runs in rows.items():
        med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
        print(f"{flags or '(default)'}: first call +{med(lambda r: r['first_call_mb']):.0f} "
              f"MB, best round {med(lambda r: r['images_per_s'][0]):.0f} img/s, median round "
              f"{med(lambda r: r['images_per_s'][1]):.0f} (medians over {len(runs)} processes)")


if __name__ == "__main__":
    main()
