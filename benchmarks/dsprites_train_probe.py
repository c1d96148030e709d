"""Throughput of the Burgess-like conv VAE on dSprites-like data: training and encoding.

    python -m benchmarks.dsprites_train_probe [steps]

Our conv torso with hidden_units (32, 32, 32, 32, 256) (4 conv layers of 32 channels, 4x4,
stride 2; dense 256), 10 latents, diagonal Gaussian posterior, Bernoulli likelihood,
Adam 5e-4, batch 64, 16 steps per execution; the train step with XLA and without (the graph
step, whose convolutions are oneDNN's), side by side in one process. Sizes the
disentanglement table's budget: steps per model, and the FactorVAE score's ~970,000 encoder
passes at default settings.
"""

import sys
import time


def main(steps=160):
    import tfvae
    from tfvae._tf import tf, tfk
    ds = tfvae.data.load("dsprites", "train", batch_size=64, drop_remainder=True).repeat()
    for jit in (True, False):
        model = tfvae.VAE(latent_dim=10, posterior="diagonal", likelihood="bernoulli",
                          input_shape=(64, 64, 1), architecture="conv",
                          hidden_units=(32, 32, 32, 32, 256), seed=0)
        model.compile(optimizer=tfk.optimizers.Adam(5e-4), jit_compile=jit,
                      steps_per_execution=16)
        t = time.perf_counter()
        model.fit(ds, steps_per_epoch=32, epochs=1, verbose=0)
        first = time.perf_counter() - t
        t = time.perf_counter()
        history = model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0).history
        took = time.perf_counter() - t
        print(f"train, {'XLA' if jit else 'graph step'}: first 32 steps (compile included) "
              f"{first:.1f} s; next {steps} steps {took:.1f} s = {steps * 64 / took:.0f} "
              f"images/s; loss {history['loss'][-1]:.1f}", flush=True)
    x = next(iter(ds))
    encode = tf.function(lambda x: model.encode(x).mean(), jit_compile=True)
    encode(x)
    t = time.perf_counter()
    for _ in range(20):
        encode(x).numpy()
    print(f"encode (posterior mean, XLA, batch 64): {20 * 64 / (time.perf_counter() - t):.0f} "
          f"images/s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
