"""Two or more compiled train steps timed in one process, in alternating rounds, so that a
burst of load on a shared machine hits all of them alike (`finite_check.py`,
`optimizer_memory.py --speed`)."""

import time


def protocol_model(optimizer):
    """The benchmark protocol's model (MLP 784-512-256, latent 32, full covariance,
    Bernoulli), compiled with XLA and 16 steps per call."""
    import tfvae  # noqa: PLC0415
    model = tfvae.VAE(latent_dim=32, posterior="full_covariance", likelihood="bernoulli",
                      input_shape=(28, 28, 1), hidden_units=(512, 256), seed=0)
    model.compile(optimizer=optimizer, jit_compile=True, steps_per_execution=16)
    return model


def random_binary_batches():
    """8192 random binary images in repeated batches of 128."""
    import numpy as np  # noqa: PLC0415
    from tfvae._tf import tf  # noqa: PLC0415
    x = (np.random.default_rng(0).random((8192, 28, 28, 1)) > 0.5).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices(x).batch(128, drop_remainder=True).repeat() \
        .prefetch(4)


def compile_all(models, ds):
    """Traces and compiles each model's step (64 steps of `fit`), so no round pays it."""
    for model in models.values():
        model.fit(ds, epochs=1, steps_per_epoch=64, verbose=0)


def time_rounds(models, ds, rounds, steps, baseline):
    """`fit` of `steps` steps for each model in turn, `rounds` times; returns each model's
    images/s in its best and its median round, and the median over rounds of each model's
    speed relative to `baseline` (the name of one of `models`)."""
    seconds = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
            seconds[name].append(time.perf_counter() - t0)
    images = steps * 128
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"best_images_per_s": {k: images / min(v) for k, v in seconds.items()},
            "median_images_per_s": {k: images / median(v) for k, v in seconds.items()},
            "median_speed_ratio": {
                k: median([b / t for b, t in zip(seconds[baseline], v)])
                for k, v in seconds.items() if k != baseline}}
