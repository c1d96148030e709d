"""The train step's speed with one finiteness reduction against one per gradient.

    python benchmarks/finite_check.py                 # 24 interleaved rounds of 96 steps
    python benchmarks/finite_check.py --rounds 40 --steps 160

The step guard (`tfvae.models._guarded`) skips a step whose loss or gradient is not finite.
It checks them with one reduction over all of them, flattened and concatenated; it used to
reduce each gradient on its own, which made XLA compile ~40 more kernels (more resident
memory at the first call). This builds the protocol's model (MLP 784-512-256, latent 32,
full covariance, Bernoulli, XLA, 16 steps per call) twice in one process, one per check,
and times `fit` on the same random binary images in alternating rounds, so that a burst of
load on a shared machine hits both alike. It prints one result line (common.report): each
check's images/s in its best and its median round, and the median of the per-round speed
ratios (one reduction / one per gradient).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--steps", type=int, default=96, help="steps per round (multiple of 16)")
    args = p.parse_args(argv)
    from tfvae.apps import _cli  # noqa: PLC0415
    _cli.limit_malloc_arenas()
    from benchmarks import _interleaved  # noqa: PLC0415
    from tfvae._tf import tf, tfk  # noqa: PLC0415
    from tfvae.models import _guarded  # noqa: PLC0415

    def per_gradient(loss, grads):  # the check before 2026-12-02
        checks = [tf.reduce_all(tf.math.is_finite(loss))]
        checks += [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        return tf.reduce_all(tf.stack(checks))

    ds = _interleaved.random_binary_batches()
    models = {"one_reduction": _interleaved.protocol_model(tfk.optimizers.Adam(1e-3))}
    _interleaved.compile_all(models, ds)
    models["per_gradient"] = _interleaved.traced_with(  # the check is read when traced
        _guarded, "_all_finite", per_gradient,
        _interleaved.protocol_model(tfk.optimizers.Adam(1e-3)), ds)
    rates = _interleaved.time_rounds(models, ds, args.rounds, args.steps, "per_gradient")
    report(benchmark="finite_check", rounds=args.rounds, steps_per_round=args.steps,
           best_images_per_s=rates["best_images_per_s"],
           median_images_per_s=rates["median_images_per_s"],
           median_speed_ratio=rates["median_speed_ratio"]["one_reduction"])


if __name__ == "__main__":
    main()
