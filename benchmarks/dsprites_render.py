"""Times the dSprites-like data: full-grid render, cache write and read, one input epoch,
and the on-demand render the metrics use.

    TFVAE_DATA_DIR=/tmp/tfvae_data python -m benchmarks.dsprites_render

Uses (and, the first time, writes) the cache under $TFVAE_DATA_DIR/dsprites/; run it with
an empty folder to time the render. Prints one line per measurement.
"""

import os
import resource
import time

import numpy as np


def main():
    from tfvae import data, dsprites
    dsprites.templates()  # the 720 templates: part of any first use
    path = dsprites.cache_path()
    cached = os.path.exists(path)
    t = time.perf_counter()
    packed = dsprites.load_packed()
    first = time.perf_counter() - t
    print(f"load_packed ({'cache read' if cached else 'render + compress + write'}): "
          f"{first:.1f} s, {packed.shape[0]} images, {packed.nbytes / 2**20:.0f} MiB packed, "
          f"cache file {os.path.getsize(path) / 2**20:.1f} MiB")
    t = time.perf_counter()
    dsprites.render_all_packed()
    print(f"render_all_packed alone: {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    dsprites.load_packed()
    print(f"load_packed from the cache: {time.perf_counter() - t:.1f} s")
    classes = dsprites.latents_classes(np.random.default_rng(0).integers(0, 737280, 10000))
    t = time.perf_counter()
    dsprites.render(classes)
    print(f"render of 10,000 random grid points (metrics' path): "
          f"{10000 / (time.perf_counter() - t):,.0f} images/s")
    ds = data.load("dsprites", "train", batch_size=64, with_factors=True)
    t = time.perf_counter()
    n = sum(int(x.shape[0]) for x, _ in ds)
    print(f"one epoch of data.load('dsprites', 'train', 64, with_factors=True): {n} images, "
          f"{n / (time.perf_counter() - t):,.0f} images/s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
