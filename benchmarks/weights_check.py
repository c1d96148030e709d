"""What reading every weight for NaN/Inf costs beside the main job's step.

    python benchmarks/weights_check.py                # 12 interleaved rounds
    python benchmarks/weights_check.py --rounds 24 --checks 40

The train app's divergence guard asks whether every weight and both of Adam's moments are
finite (`tfvae.callbacks.checkpoint.weights_finite`). It used to ask at every call into the
compiled step loop (every 16 steps), op by op in eager mode; it now asks through one traced
function, and for a guarded train step only at epoch ends. This builds the main job's model
(MLP 784-512-256, latent 32, full covariance, Bernoulli, `FlatAdam`, XLA, 16 steps per call)
and times, in alternating rounds in one process: one call of the compiled loop (16 steps on
random binary images), the eager check as it was, and the traced check. It prints one
result line (common.report): each one's median ms over the rounds, and each check's median
share of a 16-step call.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--checks", type=int, default=20, help="checks of each kind per round")
    p.add_argument("--calls", type=int, default=4, help="16-step calls per round")
    args = p.parse_args(argv)
    from tfvae.apps import _cli  # noqa: PLC0415
    _cli.limit_malloc_arenas()
    import numpy as np  # noqa: PLC0415
    import tfvae  # noqa: PLC0415
    from tfvae._tf import tf  # noqa: PLC0415
    from tfvae.callbacks.checkpoint import weights_finite  # noqa: PLC0415
    from tfvae.optimizers import FlatAdam  # noqa: PLC0415

    def eager_check(model):  # weights_finite before the traced function
        variables = list(model.variables) + list(model.optimizer.variables)
        checks = [tf.reduce_all(tf.math.is_finite(v)) for v in variables
                  if v.dtype.is_floating]
        return bool(tf.reduce_all(checks).numpy())

    model = tfvae.VAE(input_shape=(28, 28, 1), latent_dim=32, hidden_units=(512, 256),
                      posterior="full_covariance", seed=0)
    model.compile(optimizer=FlatAdam(1e-3), jit_compile=True, steps_per_execution=16)
    rng = np.random.default_rng(0)
    x = (rng.random((128 * 16 * args.calls, 28, 28, 1)) > 0.5).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(128).repeat().prefetch(2)
    model.fit(data, steps_per_epoch=16 * args.calls, epochs=1, verbose=0)  # compiles
    weights_finite(model)  # traces
    iterator = iter(data)

    def timed(fn, n):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e3

    def one_call():
        model.train_function(iterator)["loss"].numpy()

    calls, eager, traced = [], [], []
    for _ in range(args.rounds):
        calls.append(timed(one_call, args.calls))
        eager.append(timed(lambda: eager_check(model), args.checks))
        traced.append(timed(lambda: weights_finite(model), args.checks))
    med = statistics.median
    report(contender="weights check beside the main job's step",
           call_16_steps_ms=round(med(calls), 2), eager_check_ms=round(med(eager), 2),
           traced_check_ms=round(med(traced), 2),
           eager_share_of_call=round(med(e / c for e, c in zip(eager, calls)), 4),
           traced_share_of_call=round(med(t / c for t, c in zip(traced, calls)), 4),
           rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
