"""The one import point for TensorFlow, TFP and tf_keras.

Every module imports `tf, tfp, tfd, tfb, tfpl, tfk` from here, never `tf.keras`:
under TensorFlow >= 2.16 `tf.keras` is Keras 3, which cannot host `tfp.layers`.
"""

import os

from tfvae._native_log import USER_LOG_LEVEL, min_log_level, native_log_filter
from tfvae import _native_log

# TFP picks its Keras by this flag; tf_keras (Keras 2) is the one tfp.layers work with.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's native minimum log level (0 all, 1 no INFO, 2 no WARNING, 3 no ERROR). Set
# before the import, so the runtime reads it; a user's own value is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_stack():
    """Imports TensorFlow, TFP and tf_keras with TF_CPP_MIN_LOG_LEVEL applied to fd 2."""
    import importlib
    with native_log_filter(min_log_level()):
        return [importlib.import_module(n) for n in ("tensorflow", "tensorflow_probability",
                                                      "tf_keras")]


def init_devices(level):
    """Makes TensorFlow probe its devices now, under `native_log_filter(level)`: the probe
    logs at ERROR severity when a CUDA library is present without a usable GPU ("failed
    call to cuInit"), after the import's filter has ended."""
    with native_log_filter(level):
        tf.config.list_physical_devices()


tf, tfp, tfk = _import_stack()
if _native_log.probe_level is not None:  # an app asked before anything imported TensorFlow
    init_devices(_native_log.probe_level)

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers

__all__ = ["tf", "tfp", "tfd", "tfb", "tfpl", "tfk", "init_devices", "native_log_filter",
           "USER_LOG_LEVEL"]
