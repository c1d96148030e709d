"""Where a training epoch's time goes, on the benchmark protocol's model (full covariance).

Runs each variant in this process, one after the other, and prints steady-state
training images/s (median epoch after the first). Timings on a shared machine drift by
up to 2x, so name a variant several times to interleave them:

    per_element   the input pipeline alone, written the usual way (from_tensor_slices ->
                  cache -> shuffle -> batch -> map): tf.data touches every image
    pipeline      the input pipeline alone, `tfvae.data.load` (one gather per batch)
    fit_xla       `VAE.fit` with XLA, one step per call from Python (Keras' default)
    fit_xla_spe   `VAE.fit` with XLA, --spe steps per call (the train app's default)
    fit_spe       the same without XLA
    floor         the same math written out by hand, one XLA-compiled step per batch on
                  tensors already in memory, called from a Python loop
    floor_loop    the hand-written step called from a tf.while_loop (no Python per step)
    floor_loop_nojit  the same without XLA

    python benchmarks/profile_step.py --epochs 4 --variants fit_xla,fit_xla_spe,fit_xla,fit_xla_spe
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _steady(times, n):
    import numpy as np
    return n / float(np.median(times[1:] or times))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--variants", default="per_element,pipeline,fit_xla,fit_xla_spe,fit_spe,"
                   "floor,floor_loop,floor_loop_nojit")
    p.add_argument("--spe", type=int, default=16, help="steps_per_execution of fit_xla_spe")
    args = p.parse_args(argv)

    import numpy as np
    import tfvae
    from benchmarks import common
    from tfvae._tf import tf, tfk

    n = len(tfvae.data.load_arrays(args.dataset, "train")[0][:args.limit])

    def per_element_pipeline():
        images = tfvae.data.load_arrays(args.dataset, "train")[0][:args.limit]
        return tf.data.Dataset.from_tensor_slices(images).cache().shuffle(len(images)).batch(
            128).map(lambda x: tf.cast(x > 127, tf.float32)).prefetch(tf.data.AUTOTUNE)

    def run_fit(jit, spe):
        tfk.utils.set_random_seed(0)
        train = tfvae.data.load(args.dataset, "train", 128, binarize="static", limit=args.limit)
        model = tfvae.VAE(latent_dim=32, posterior="full_covariance", hidden_units=(512, 256),
                          seed=0)
        model.compile(optimizer=tfk.optimizers.Adam(1e-3), jit_compile=jit,
                      steps_per_execution=spe)
        timer = common.epoch_timer(tfk.callbacks.Callback)
        model.fit(train, epochs=args.epochs, verbose=0, callbacks=[timer])
        return _steady(timer.times, n)

    def floor(loop, jit=True):
        tfk.utils.set_random_seed(0)
        x_all = tfvae.data.load_arrays(args.dataset, "train")[0][:args.limit]
        x_all = tf.constant((x_all > 127.5).reshape(len(x_all), -1).astype(np.float32))
        d, b = 32, 128
        init = tfk.initializers.GlorotUniform(seed=0)
        shapes = [(784, 512), (512, 256), (256, d + d + d * (d - 1) // 2), (d, 256),
                  (256, 512), (512, 784)]
        ws = [tf.Variable(init(s)) for s in shapes]
        bs = [tf.Variable(tf.zeros(s[1])) for s in shapes]
        variables = ws + bs
        opt = tfk.optimizers.Adam(1e-3)
        opt.build(variables)
        idx = np.zeros((d, d), np.int32)
        r, c = np.tril_indices(d, -1)
        idx[r, c] = np.arange(1, len(r) + 1)
        idx = tf.constant(idx.reshape(-1))

        def step(x, seed):
            with tf.GradientTape() as tape:
                h = tf.nn.relu(x @ ws[0] + bs[0])
                h = tf.nn.relu(h @ ws[1] + bs[1])
                o = h @ ws[2] + bs[2]
                loc, raw_diag, off = o[:, :d], o[:, d:2 * d], 1e-3 * o[:, 2 * d:]
                diag = tf.nn.softplus(raw_diag) + 1e-5
                lower = tf.reshape(tf.gather(tf.pad(off, [[0, 0], [1, 0]]), idx, axis=-1),
                                   [-1, d, d])
                scale = lower + diag[:, :, None] * tf.eye(d)
                eps = tf.random.stateless_normal(tf.shape(loc), seed)
                z = loc + tf.linalg.matvec(scale, eps)
                g = tf.nn.relu(z @ ws[3] + bs[3])
                g = tf.nn.relu(g @ ws[4] + bs[4])
                logits = g @ ws[5] + bs[5]
                rec = tf.reduce_sum(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), -1)
                kl = 0.5 * (tf.reduce_sum(tf.square(scale), [1, 2]) + tf.reduce_sum(
                    tf.square(loc), -1) - d) - tf.reduce_sum(tf.math.log(diag), -1)
                loss = tf.reduce_mean(rec + kl)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        one = tf.function(step, jit_compile=jit)
        steps = int(np.ceil(len(x_all) / b))

        @tf.function
        def epoch(x_all, perm, e):
            def body(i, acc):
                xb = tf.gather(x_all, perm[i * b:tf.minimum((i + 1) * b, len(perm))])
                return i + 1, acc + one(xb, tf.stack([e, tf.cast(i, tf.int64)]))
            return tf.while_loop(lambda i, _: i < steps, body, (0, 0.0))[1]

        times = []
        for e in range(args.epochs):
            perm = tf.random.shuffle(tf.range(len(x_all)), seed=e)
            t0 = time.perf_counter()
            if loop:
                float(epoch(x_all, perm, tf.constant(e, tf.int64)))
            else:
                for i in range(steps):
                    xb = tf.gather(x_all, perm[i * b:(i + 1) * b])
                    loss = one(xb, tf.constant([e, i], tf.int64))
                float(loss)
            times.append(time.perf_counter() - t0)
        return _steady(times, len(x_all))

    def iterate(ds):
        times = []
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            for _ in ds:
                pass
            times.append(time.perf_counter() - t0)
        return _steady(times, n)

    variants = {
        "per_element": lambda: iterate(per_element_pipeline()),
        "pipeline": lambda: iterate(tfvae.data.load(args.dataset, "train", 128,
                                                    binarize="static", limit=args.limit)),
        "fit_xla": lambda: run_fit(True, 1),
        "fit_xla_spe": lambda: run_fit(True, args.spe),
        "fit_spe": lambda: run_fit(False, args.spe),
        "floor": lambda: floor(loop=False),
        "floor_loop": lambda: floor(loop=True),
        "floor_loop_nojit": lambda: floor(loop=True, jit=False),
    }
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(variants))
    if unknown:
        p.error(f"unknown variants {unknown}; expected some of {list(variants)}")
    for v in names:
        print(f"{v:17s} {variants[v]():8.0f} img/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
