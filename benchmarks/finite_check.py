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
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--steps", type=int, default=96, help="steps per round (multiple of 16)")
    args = p.parse_args(argv)
    from tfvae.apps import _cli  # noqa: PLC0415
    _cli.limit_malloc_arenas()
    import numpy as np  # noqa: PLC0415
    import tfvae  # noqa: PLC0415
    from tfvae._tf import tf, tfk  # noqa: PLC0415
    from tfvae.models import _guarded  # noqa: PLC0415

    def per_gradient(loss, grads):  # the check before 2026-12-02
        checks = [tf.reduce_all(tf.math.is_finite(loss))]
        checks += [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        return tf.reduce_all(tf.stack(checks))

    x = (np.random.default_rng(0).random((8192, 28, 28, 1)) > 0.5).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(128, drop_remainder=True).repeat() \
        .prefetch(4)
    models, current = {}, _guarded._all_finite  # noqa: SLF001
    try:
        for name, check in (("one_reduction", current), ("per_gradient", per_gradient)):
            _guarded._all_finite = check  # noqa: SLF001  (read when the step is traced)
            model = tfvae.VAE(latent_dim=32, posterior="full_covariance",
                              likelihood="bernoulli", input_shape=(28, 28, 1),
                              hidden_units=(512, 256), seed=0)
            model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=True,
                          steps_per_execution=16)
            model.fit(ds, epochs=1, steps_per_epoch=64, verbose=0)  # traced and compiled
            models[name] = model
    finally:
        _guarded._all_finite = current  # noqa: SLF001
    seconds = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
            seconds[name].append(time.perf_counter() - t0)
    images = args.steps * 128
    ratios = sorted(b / a for a, b in zip(seconds["one_reduction"], seconds["per_gradient"]))
    report(benchmark="finite_check", rounds=args.rounds, steps_per_round=args.steps,
           best_images_per_s={k: images / min(v) for k, v in seconds.items()},
           median_images_per_s={k: images / sorted(v)[len(v) // 2]
                                for k, v in seconds.items()},
           median_speed_ratio=ratios[len(ratios) // 2])


if __name__ == "__main__":
    main()
