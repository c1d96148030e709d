"""Baseline (a): the TensorFlow Probability "Probabilistic Layers VAE" tutorial pattern.

tf_keras Sequential encoder ending in `tfpl.MultivariateNormalTriL` with a
`KLDivergenceRegularizer` activity regularizer against an Independent(Normal) prior, a
Sequential decoder ending in `tfpl.IndependentBernoulli`, a functional Model trained by
`model.fit` on the loss -log_prob(x). Architecture and optimizer follow DESIGN.md's
benchmark protocol. Kept as the tutorial writes it, including its known flaw: the
regularizer is applied twice (tensorflow/probability#1215), so it trains on
reconstruction + 2 KL. The test NLL is measured the same way for every contender.

    python benchmarks/baselines/tfp_layers.py --data data.npz --epochs 10
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks import common  # noqa: E402


def main(argv=None):
    args = common.baseline_args(argv)
    common.TURNS.begin()  # under a lockstep coordinator: nothing heavy before this turn

    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf_keras as tfk
    tfd, tfpl, tfkl = tfp.distributions, tfp.layers, tfk.layers
    tfk.utils.set_random_seed(args.seed)

    x_train, x_test = common.load_npz(args.data)
    input_shape, encoded_size = x_train.shape[1:], 32
    prior = tfd.Independent(tfd.Normal(loc=tf.zeros(encoded_size), scale=1),
                            reinterpreted_batch_ndims=1)
    encoder = tfk.Sequential([
        tfkl.InputLayer(input_shape=input_shape),
        tfkl.Flatten(),
        tfkl.Dense(512, activation="relu"),
        tfkl.Dense(256, activation="relu"),
        tfkl.Dense(tfpl.MultivariateNormalTriL.params_size(encoded_size), activation=None),
        tfpl.MultivariateNormalTriL(
            encoded_size, activity_regularizer=tfpl.KLDivergenceRegularizer(prior)),
    ])
    decoder = tfk.Sequential([
        tfkl.InputLayer(input_shape=[encoded_size]),
        tfkl.Dense(256, activation="relu"),
        tfkl.Dense(512, activation="relu"),
        tfkl.Dense(tfpl.IndependentBernoulli.params_size(input_shape)),
        tfpl.IndependentBernoulli(input_shape, tfd.Bernoulli.logits),
    ])
    vae = tfk.Model(inputs=encoder.inputs, outputs=decoder(encoder.outputs[0]))
    vae.compile(optimizer=tfk.optimizers.Adam(learning_rate=1e-3),
                loss=lambda x, rv_x: -rv_x.log_prob(x))
    train = tf.data.Dataset.from_tensor_slices((x_train, x_train)).shuffle(
        len(x_train), seed=args.seed).batch(128).prefetch(tf.data.AUTOTUNE)
    timer = common.epoch_timer(tfk.callbacks.Callback)
    vae.fit(train, epochs=args.epochs, verbose=0, callbacks=[timer])

    # Test -ELBO with the analytic-free MC KL the pattern uses, one sample, whole test set.
    def one_sample_log_w(xb):
        q = encoder(xb)

        def draw():
            z = q.sample()
            return decoder(z).log_prob(xb) + prior.log_prob(z) - q.log_prob(z)
        return draw

    common.score_baseline(tf, "TFP layers tutorial (tf_keras, 2xKL bug kept)", one_sample_log_w, x_train, x_test, timer, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
