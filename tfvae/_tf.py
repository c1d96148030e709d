"""The one import point for TensorFlow, TFP and tf_keras.

Every module imports `tf, tfp, tfd, tfb, tfpl, tfk` from here, never `tf.keras`:
under TensorFlow >= 2.16 `tf.keras` is Keras 3, which cannot host `tfp.layers`.
"""

import contextlib
import os
import re

# TFP picks its Keras by this flag; tf_keras (Keras 2) is the one tfp.layers work with.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's native minimum log level (0 all, 1 no INFO, 2 no WARNING, 3 no ERROR). Set
# before the import, so the runtime reads it; a user's own value is kept.
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: an absl/TensorFlow native log line: severity letter, MMDD, time, thread, file:line]
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]*\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"


def _min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _keep(line, level):
    """Whether a line the native runtime wrote to fd 2 passes TF_CPP_MIN_LOG_LEVEL."""
    if line.startswith(_ABSL_PREAMBLE):
        return level == 0
    match = _NATIVE_LINE.match(line)
    return match is None or _SEVERITY[match.group(1)] >= level


@contextlib.contextmanager
def native_log_filter(level):
    """Applies `level` (TF_CPP_MIN_LOG_LEVEL's scale) to what is written to fd 2 inside.

    The shared libraries log through absl before absl is initialized and before TensorFlow
    reads TF_CPP_MIN_LOG_LEVEL (CUDA probing, oneDNN's "custom operations are on", once per
    library that checks it), straight to file descriptor 2, so the variable alone does not
    silence them. For the length of the block fd 2 goes to a temporary file; afterwards
    every line is written back except native log lines below `level`: the runtime's own
    rule, applied to the lines it emits before it can apply it. Nothing is filtered by
    content, and nothing at all at level 0.
    """
    import sys
    import tempfile
    try:
        if level <= 0:
            raise OSError("nothing to filter")
        sys.stderr.flush()
        saved = os.dup(2)
        capture = tempfile.TemporaryFile()
        os.dup2(capture.fileno(), 2)
    except (OSError, ValueError):  # level 0, or no usable fd 2: run as is
        yield
        return
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept = [line for line in capture.read().decode(errors="replace").splitlines(True)
                if _keep(line, level)]
        capture.close()
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _import_stack():
    """Imports TensorFlow, TFP and tf_keras with TF_CPP_MIN_LOG_LEVEL applied to fd 2."""
    import importlib
    with native_log_filter(_min_log_level()):
        return [importlib.import_module(n) for n in ("tensorflow", "tensorflow_probability",
                                                      "tf_keras")]


def init_devices(level):
    """Makes TensorFlow probe its devices now, under `native_log_filter(level)`: the probe
    logs at ERROR severity when a CUDA library is present without a usable GPU ("failed
    call to cuInit"), after the import's filter has ended."""
    with native_log_filter(level):
        tf.config.list_physical_devices()


tf, tfp, tfk = _import_stack()

tfd = tfp.distributions
tfb = tfp.bijectors
tfpl = tfp.layers

__all__ = ["tf", "tfp", "tfd", "tfb", "tfpl", "tfk", "init_devices", "native_log_filter"]
