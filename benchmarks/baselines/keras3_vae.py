"""Baseline (b): the keras.io "Variational AutoEncoder" example pattern, on Keras 3.

A subclassed `keras.Model` with a custom `train_step` (GradientTape, loss trackers), a
diagonal Gaussian posterior (z_mean, z_log_var, a `Sampling` layer), the analytic KL
-0.5 * sum(1 + log_var - mean^2 - exp(log_var)), and a sigmoid decoder scored with
binary cross-entropy summed over pixels. The MLP, optimizer and batch follow DESIGN.md's
benchmark protocol; Keras 3 compiles the step with XLA by default (jit_compile="auto").

    python benchmarks/baselines/keras3_vae.py --data data.npz --epochs 10
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from benchmarks import common  # noqa: E402


def main(argv=None):
    args = common.baseline_args(argv)
    common.TURNS.begin()  # under a lockstep coordinator: nothing heavy before this turn

    import numpy as np
    import tensorflow as tf
    import keras
    from keras import layers, ops
    keras.utils.set_random_seed(args.seed)
    latent_dim = 32

    class Sampling(layers.Layer):
        """Uses (z_mean, z_log_var) to sample z, the vector encoding a digit."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    encoder_inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Flatten()(encoder_inputs)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(256, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(encoder_inputs, [z_mean, z_log_var, z], name="encoder")

    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(256, activation="relu")(latent_inputs)
    x = layers.Dense(512, activation="relu")(x)
    x = layers.Dense(784, activation="sigmoid")(x)
    decoder_outputs = layers.Reshape((28, 28, 1))(x)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")

    class VAE(keras.Model):
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder = encoder
            self.decoder = decoder
            self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
            self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
            self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

        @property
        def metrics(self):
            return [self.total_loss_tracker, self.reconstruction_loss_tracker,
                    self.kl_loss_tracker]

        def train_step(self, data):
            with tf.GradientTape() as tape:
                z_mean, z_log_var, z = self.encoder(data)
                reconstruction = self.decoder(z)
                reconstruction_loss = ops.mean(ops.sum(
                    keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
                kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
                kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
                total_loss = reconstruction_loss + kl_loss
            grads = tape.gradient(total_loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.total_loss_tracker.update_state(total_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.kl_loss_tracker.update_state(kl_loss)
            return {"loss": self.total_loss_tracker.result(),
                    "reconstruction_loss": self.reconstruction_loss_tracker.result(),
                    "kl_loss": self.kl_loss_tracker.result()}

    x_train, x_test = common.load_npz(args.data)
    vae = VAE(encoder, decoder)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3))
    timer = common.epoch_timer(keras.callbacks.Callback)
    vae.fit(x_train, epochs=args.epochs, batch_size=128, verbose=0, callbacks=[timer])

    # Scored exactly as it was trained: Bernoulli log-likelihood of the sigmoid output with
    # Keras' epsilon clipping (1e-7), plus log p(z) - log q(z|x) of the diagonal Gaussian.
    eps = keras.config.epsilon()

    def one_sample_log_w(xb):
        mean, log_var, _ = encoder(xb)
        std = tf.exp(0.5 * log_var)

        def draw():
            e = tf.random.normal(tf.shape(mean))
            zz = mean + std * e
            probs = tf.clip_by_value(decoder(zz), eps, 1 - eps)
            log_px = tf.reduce_sum(xb * tf.math.log(probs) + (1 - xb) * tf.math.log(1 - probs),
                                   axis=(1, 2, 3))
            log_pz = -0.5 * tf.reduce_sum(zz**2 + np.log(2 * np.pi), 1)
            log_qz = -0.5 * tf.reduce_sum(e**2 + np.log(2 * np.pi) + log_var, 1)
            return log_px + log_pz - log_qz
        return draw

    common.score_baseline(tf, "keras.io VAE example (Keras 3, diagonal, XLA auto)", one_sample_log_w, x_train, x_test, timer, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
