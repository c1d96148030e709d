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


def traced_with(module, attr, value, model, ds):
    """Compiles `model`'s step (`compile_all`) with `module.attr` set to `value` while it is
    traced, and restores it: a variant of the step beside the others in one process.
    Returns `model`."""
    original = getattr(module, attr)
    setattr(module, attr, value)
    try:
        compile_all({"variant": model}, ds)
    finally:
        setattr(module, attr, original)
    return model


def _call_end_clock():
    """A tf_keras callback recording the wall time at the end of each call into the
    compiled loop (`on_train_batch_end`, every `steps_per_execution` steps)."""
    from tfvae._tf import tfk  # noqa: PLC0415

    class Clock(tfk.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append((batch, time.perf_counter()))
    return Clock()


def time_rounds(models, ds, rounds, steps, baseline):
    """`fit` of `steps` steps for each model in turn, `rounds` times; returns each model's
    images/s in its best and its median round, and the median over rounds of each model's
    speed relative to `baseline` (the name of one of `models`).

    A round is timed from the end of its first call into the compiled loop to the end of
    its last, so it counts steps only: not `fit`'s setup, nor its end, where `fit` was seen
    to hold on after `on_train_end` until ~5.1 s after it began (a 2.5 s round then read
    5.1 s) on this project's 2-core machines."""
    seconds = {name: [] for name in models}
    timed_steps = None
    for _ in range(rounds):
        for name, model in models.items():
            clock = _call_end_clock()
            model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[clock])
            (first, t0), (last, t1) = clock.ends[0], clock.ends[-1]
            timed_steps = last - first
            seconds[name].append(t1 - t0)
    if not timed_steps:
        raise ValueError(f"{steps} steps are one call into the compiled loop; time more.")
    images = timed_steps * 128
    median = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {"best_images_per_s": {k: images / min(v) for k, v in seconds.items()},
            "median_images_per_s": {k: images / median(v) for k, v in seconds.items()},
            "median_speed_ratio": {
                k: median([b / t for b, t in zip(seconds[baseline], v)])
                for k, v in seconds.items() if k != baseline}}
