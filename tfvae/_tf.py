"""The one import point for TensorFlow, TFP and tf_keras.

Every module imports `tf, tfp, tfd, tfb, tfpl, tfk` from here, never `tf.keras`:
under TensorFlow >= 2.16 `tf.keras` is Keras 3, which cannot host `tfp.layers`.
"""

import os

# TFP picks its Keras by this flag; tf_keras (Keras 2) is the one tfp.layers work with.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
import tf_keras as tfk  # noqa: E402

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers

__all__ = ["tf", "tfp", "tfd", "tfb", "tfpl", "tfk"]
