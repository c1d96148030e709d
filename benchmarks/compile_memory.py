"""Resident memory of the first compiled train call: XLA against the graph step.

    python benchmarks/compile_memory.py                     # XLA, 16 steps per call
    python benchmarks/compile_memory.py --no-jit            # the graph step
    python benchmarks/compile_memory.py --posterior diagonal

Builds the protocol's VAE (MLP 784-512-256, latent 32, Bernoulli) on 4096 random binary
images, compiles it and prints RSS / peak RSS in MB (VmRSS / VmHWM, exact) after building,
after the first `fit` call (tracing and compiling), after one more epoch, and after
`malloc_trim(0)` hands glibc's free pages back (what is left then is held, not cached).
Malloc arenas are capped as the apps cap them (`tfvae.apps._cli.limit_malloc_arenas`).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.memory_profile import memory_mb  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-jit", action="store_true")
    p.add_argument("--steps-per-execution", type=int, default=16)
    p.add_argument("--posterior", default="full_covariance")
    args = p.parse_args(argv)
    from tfvae.apps import _cli
    _cli.limit_malloc_arenas()
    import numpy as np
    import tfvae
    from tfvae._tf import tfk
    x = (np.random.default_rng(0).random((4096, 28, 28, 1)) > 0.5).astype(np.float32)
    phases = {"start": memory_mb()}
    model = tfvae.VAE(latent_dim=32, posterior=args.posterior, likelihood="bernoulli",
                      input_shape=(28, 28, 1), hidden_units=(512, 256))
    model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=not args.no_jit,
                  steps_per_execution=args.steps_per_execution)
    phases["built"] = memory_mb()
    model.fit(x, batch_size=128, epochs=1, verbose=0, steps_per_epoch=args.steps_per_execution)
    phases["first_call"] = memory_mb()
    model.fit(x, batch_size=128, epochs=1, verbose=0)
    phases["epoch"] = memory_mb()
    _cli.release_free_memory()  # gc.collect(), then malloc_trim(0) (glibc only)
    phases["after_malloc_trim"] = memory_mb()
    print(json.dumps({"jit": not args.no_jit, "posterior": args.posterior,
                      "rss_and_peak_mb": phases}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
