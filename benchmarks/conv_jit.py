"""The conv VAE's train step with XLA and without, side by side in one process, on CPU.

    python benchmarks/conv_jit.py [--steps 48] [--sizes 28,64]

For each image size (28: the Fashion-MNIST conv torso, the default hidden units; 64: the
dSprites Burgess-like torso, (32, 32, 32, 32, 256), 10 latents), builds the diagonal-Gaussian
Bernoulli conv VAE twice, compiles it with `jit_compile=True` and then `False` (16 steps per
execution, batch 64 random binary images), runs one warm-up call (tracing and compiling), and
times `--steps` more steps. Prints one result line per size with both images/s and their
ratio: the measurement behind `jit_compile="auto"` choosing the graph step for convolutions
on a host without a GPU (tfvae/models/_compile.py).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report  # noqa: E402

TORSOS = {28: dict(latent_dim=32, hidden_units=None),
          64: dict(latent_dim=10, hidden_units=(32, 32, 32, 32, 256))}


def images_per_s(size, jit, steps, batch=64):
    import numpy as np
    import tfvae
    from tfvae._tf import tfk
    x = (np.random.default_rng(0).random((batch * 16, size, size, 1)) > 0.5).astype("float32")
    model = tfvae.VAE(posterior="diagonal", likelihood="bernoulli", input_shape=(size, size, 1),
                      architecture="conv", seed=0, **TORSOS[size])
    model.compile(optimizer=tfk.optimizers.Adam(5e-4), jit_compile=jit, steps_per_execution=16)
    model.fit(x, batch_size=batch, epochs=1, verbose=0)   # trace and compile
    calls = max(1, steps // 16)
    t = time.perf_counter()
    model.fit(x, batch_size=batch, epochs=calls, verbose=0)
    return calls * 16 * batch / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--sizes", default="28,64")
    args = p.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        xla = images_per_s(size, True, args.steps)
        graph = images_per_s(size, False, args.steps)
        report(contender=f"conv_vae_{size}x{size}", xla_images_per_s=round(xla, 1),
               graph_images_per_s=round(graph, 1), xla_over_graph=round(xla / graph, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
