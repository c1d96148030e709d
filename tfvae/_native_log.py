"""Filtering TensorFlow's native start-up log lines, without importing TensorFlow.

TensorFlow's shared libraries write to file descriptor 2 before they read
TF_CPP_MIN_LOG_LEVEL; `native_log_filter` applies that level to what they write.
`tfvae._tf` imports TensorFlow under it and, if an app asked for it with
`quiet_device_probe` before the import, probes the devices under it too.
"""

import contextlib
import os
import re

#: TF_CPP_MIN_LOG_LEVEL as the user set it (None if unset), read before `tfvae._tf` sets
#: its default: a user's own value is obeyed, never overridden
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
#: the level at which `tfvae._tf` probes the devices right after importing TensorFlow, or
#: None for no early probe (set by the apps before anything imports TensorFlow)
probe_level = None


def quiet_device_probe(level):
    """Asks for TensorFlow's device probe under `native_log_filter(level)`: now, if
    TensorFlow is imported already, else right after `tfvae._tf` imports it. An app calls
    this before parsing its arguments, so `--help` need not import TensorFlow."""
    global probe_level
    import sys
    if "tfvae._tf" in sys.modules:
        sys.modules["tfvae._tf"].init_devices(level)
    else:
        probe_level = level


def min_log_level():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


#: an absl/TensorFlow native log line: severity letter, MMDD, time, thread, file:line]
_NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]]*\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"


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
