"""Two things that keep freed memory resident in the main job: reference cycles, and
TensorFlow's pool for large tensors.

    python benchmarks/retained_memory.py                          # both probes
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/retained_memory.py  # the pool without oneDNN

1. **cycles**: the epoch-end decomposition (`tfvae.evaluation.elbo_decomposition`, 1,000
   images, the protocol's full-covariance VAE with 32 latents) called three times; the
   fourth call's garbage is then collected with `gc.DEBUG_SAVEALL`, which reports what
   only a cyclic collection frees: the objects, the tensors among them and their bytes.
   A full collection's time (`gc.collect()`) is measured with the objects alive then,
   and again after `gc.freeze()` of those (what the train app does at its first train
   call), exact wall time of one call each.
2. **pool**: RSS (VmRSS, exact) after a 41 MiB uint8 tensor (55,000 images) is made,
   then after it is deleted and glibc's free pages trimmed (`_cli.release_free_memory`).
   TensorFlow's CPU allocator keeps large freed buffers in a pool of its own when oneDNN
   is on (the default on x86), so the second figure shows what the process keeps.
"""

import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report  # noqa: E402
from benchmarks.memory_profile import memory_mb  # noqa: E402


def cycles():
    import numpy as np  # noqa: PLC0415
    import tfvae  # noqa: PLC0415
    from tfvae.evaluation import elbo_decomposition  # noqa: PLC0415
    model = tfvae.VAE(latent_dim=32, posterior="full_covariance", likelihood="bernoulli",
                      input_shape=(28, 28, 1), hidden_units=(512, 256))
    images = (np.random.default_rng(0).random((1000, 28, 28, 1)) > 0.5).astype(np.float32)
    for _ in range(3):
        elbo_decomposition(model, images)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    elbo_decomposition(model, images)
    found = gc.collect()
    tensors = [o for o in gc.garbage if type(o).__name__ == "EagerTensor"]
    size = sum(int(np.prod(t.shape)) * t.dtype.size for t in tensors)
    gc.set_debug(0)
    gc.garbage.clear()
    t = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - t
    gc.freeze()
    t = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - t
    tracked = gc.get_freeze_count()
    gc.unfreeze()
    return {"cyclic_garbage_objects": found, "tensors_in_it": len(tensors),
            "their_mb": round(size / 2**20, 1), "tracked_objects": tracked,
            "full_collection_s": round(full, 3), "after_freeze_s": round(frozen, 4)}


def pool():
    import numpy as np  # noqa: PLC0415
    from tfvae.apps import _cli  # noqa: PLC0415
    from tfvae.data import host_tensor  # noqa: PLC0415
    array = np.random.default_rng(0).integers(0, 255, (55000, 28, 28, 1), dtype=np.uint8)
    _cli.release_free_memory()
    before = memory_mb()[0]
    tensor = host_tensor(array)
    made = memory_mb()[0]
    del tensor
    _cli.release_free_memory()
    freed = memory_mb()[0]
    return {"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
            "tensor_mb": round(array.nbytes / 2**20, 1), "rss_growth_made_mb":
            round(made - before, 1), "rss_growth_after_delete_mb": round(freed - before, 1)}


def main():
    from tfvae.apps import _cli  # noqa: PLC0415
    _cli.limit_malloc_arenas()
    report(probe="retained_memory", pool=pool(), cycles=cycles())


if __name__ == "__main__":
    main()
