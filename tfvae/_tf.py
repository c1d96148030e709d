"""The one import point for TensorFlow, TFP and tf_keras.

Every module imports `tf, tfp, tfd, tfb, tfpl, tfk` from here, never `tf.keras`:
under TensorFlow >= 2.16 `tf.keras` is Keras 3, which cannot host `tfp.layers`.
"""

import os

# TFP picks its Keras by this flag; tf_keras (Keras 2) is the one tfp.layers work with.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow():
    """Imports TensorFlow with its native start-up banner filtered out of stderr.

    TensorFlow's C++ runtime prints "Could not find cuda drivers", "All log messages
    before absl::InitializeLog()" and CPU-feature lines straight to file descriptor 2
    before TF_CPP_MIN_LOG_LEVEL takes effect; they would bury the one-line errors of the
    command-line apps. Anything else written during the import is passed through, and
    nothing is filtered when TF_CPP_MIN_LOG_LEVEL is "0" (the user asked for the logs).
    """
    import importlib
    import sys
    import tempfile
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        return importlib.import_module("tensorflow")
    noise = ("absl::InitializeLog()", "cudart_stub.cc", "Could not find cuda drivers",
             "cpu_feature_guard.cc", "To enable the following instructions")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        capture = tempfile.TemporaryFile()
        os.dup2(capture.fileno(), 2)
    except (OSError, ValueError):  # no usable fd 2: nothing to filter
        return importlib.import_module("tensorflow")
    try:
        return importlib.import_module("tensorflow")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept = [line for line in capture.read().decode(errors="replace").splitlines(True)
                if not any(n in line for n in noise)]
        capture.close()
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


tf = _import_tensorflow()
import tensorflow_probability as tfp  # noqa: E402
import tf_keras as tfk  # noqa: E402

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers

__all__ = ["tf", "tfp", "tfd", "tfb", "tfpl", "tfk"]
