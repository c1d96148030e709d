"""Shared command-line plumbing of the tfvae apps: one-line errors, presets, checks.

Every app's `main(argv)` runs inside `run_main`, so bad input ends the process with exit
code 2 and exactly one line on stderr (``tfvae-train: error: ...``), never a traceback:

```python
def main(argv=None):
    return _cli.run_main("tfvae-train", _main, argv)

def _main(argv):
    parser = _cli.ArgumentParser(prog="tfvae-train")       # errors raise UsageError
    args = parser.parse_args(argv)
    with _cli.user_errors():                               # ValueError/TypeError -> exit 2
        model = build(args)
```
Exit codes: 0 success, 2 bad input (UsageError), 130 interrupted (Ctrl-C); anything else
is a bug and keeps its traceback.
"""

import argparse
import contextlib
import errno
import gc
import os
import sys
import tempfile

from tfvae import _native_log

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: the largest count TensorFlow's int32 shapes and indices hold
MAX_INT32 = 2**31 - 1
#: seeds go to tf_keras.utils.set_random_seed, which takes [0, 2**32 - 1]
MAX_SEED = 2**32 - 1


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def one_line(exc):
    """The first non-empty line of an exception's message (or its type name)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    line = next((l.strip() for l in text.splitlines() if l.strip()), "")
    return line or type(exc).__name__


def quiet_devices(argv):
    """The apps print no TensorFlow native log line unless `--verbose 2` is given (or the
    user set TF_CPP_MIN_LOG_LEVEL, which is then obeyed): device probing, which logs an
    ERROR line on machines with CUDA libraries and no GPU, runs under that rule right after
    TensorFlow's import (`tfvae._native_log`), so `--help` imports nothing."""
    verbose = any(a in ("--verbose=2", "--verbose 2") for a in argv) or any(
        a == "--verbose" and b == "2" for a, b in zip(argv, argv[1:]))
    if _native_log.USER_LOG_LEVEL is None and not verbose:  # else the user's level holds
        _native_log.quiet_device_probe(3)  # when TensorFlow is imported: not for --help


#: glibc's mallopt parameter for the number of malloc arenas
_M_ARENA_MAX = -8
#: arenas the apps allow (glibc's default is 8 per core)
MALLOC_ARENAS = 2


def _glibc(name):
    """glibc's function `name` through ctypes, or None off glibc."""
    try:
        import ctypes  # noqa: PLC0415
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc
        return None


def limit_malloc_arenas(arenas=MALLOC_ARENAS):
    """Caps glibc's malloc arenas for this process, as MALLOC_ARENA_MAX=`arenas` would.

    TensorFlow's compiler, tf.data and op threads each get an arena of their own by
    default, and memory freed in one arena is not reused by another: the main job's peak
    RSS was 25-150 MB higher that way (benchmarks/README.md). glibc fixes its arena
    limit when the second thread first allocates, so this must run before TensorFlow is
    imported; it does nothing after that, when the user set MALLOC_ARENA_MAX (which glibc
    obeys), or off glibc. Returns whether the cap was set.
    """
    if "MALLOC_ARENA_MAX" in os.environ or "tensorflow" in sys.modules:
        return False
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(_M_ARENA_MAX, int(arenas)))


def release_free_memory():
    """Frees unreachable reference cycles (`gc.collect()`), then hands the pages glibc's
    malloc holds free back to the kernel (`malloc_trim(0)`).

    XLA's first compilation and each epoch's end (summaries, the decomposition, the
    checkpoint) free hundreds of MB that glibc keeps mapped, so they count in the RSS of
    everything that follows; allocations after a trim fault pages back in as they need
    them. The collection comes first because TFP distributions and Keras objects form
    reference cycles: the epoch-end decomposition's garbage waited for Python's rare full
    collection, and the main job's RSS crept up epoch by epoch until one ran
    (benchmarks/README.md, "Garbage cycles"). Returns whether the trim released anything;
    off glibc it only collects."""
    gc.collect()
    trim = _glibc("malloc_trim")
    return trim is not None and bool(trim(0))


def run_main(prog, fn, argv=None):
    """Calls `fn(argv)`; UsageError -> one stderr line and 2, Ctrl-C -> 130.

    Returns:
        the process exit code (`fn`'s return value, 0 if it returned None).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    limit_malloc_arenas()
    quiet_devices(argv)
    try:
        code = fn(argv)
    except UsageError as e:
        sys.stdout.flush()
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\n{prog}: interrupted.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return 0 if code is None else int(code)


@contextlib.contextmanager
def user_errors(prefix=""):
    """Turns ValueError/TypeError/OSError raised inside into one-line UsageErrors.

    Wrap only the setup that checks user input (building the model from flags, opening
    files), never training: a bug there should keep its traceback.
    """
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError, OSError, KeyError) as e:
        raise UsageError(prefix + one_line(e)) from e


#: errno values that mean the disk or its permissions, not the program, failed a write
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


def disk_reason(exc):
    """strerror of a failed write for a disk-level reason (full, read-only, no permission),
    from an OSError or from TensorFlow's error text (its writers raise OpErrors); else None."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
        return os.strerror(exc.errno)
    text = str(exc)
    return next((os.strerror(n) for n in DISK_ERRNOS if os.strerror(n) in text), None)


@contextlib.contextmanager
def write_errors(prefix, suffix=""):
    """Turns a write that failed for a disk-level reason (`disk_reason`) into one UsageError
    line, `prefix + reason + suffix`; every other error passes through unchanged."""
    try:
        yield
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001  (re-raised unless the disk is the cause)
        reason = disk_reason(e)
        if reason is None:
            raise
        raise UsageError(f"{prefix}{reason}{suffix}") from e


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors raise UsageError (one line) instead of exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--lat` must not silently mean a flag
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def check_count(value, flag, maximum=MAX_INT32):
    """Refuses an int flag outside 1..maximum (TensorFlow counts in int32) with one line."""
    if value is not None and not 1 <= value <= maximum:
        raise UsageError(f"`{flag}` must be an int in 1..{maximum}; got {value}.")
    return value


def check_seed(value, flag="--seed"):
    """Refuses a seed outside 0..2**32 - 1 with one line."""
    if value is not None and not 0 <= value <= MAX_SEED:
        raise UsageError(f"`{flag}` must be an int in 0..{MAX_SEED}; got {value}.")
    return value


def load_errors():
    """The exception types that mean "this file is damaged", beyond OSError/ValueError:
    TensorFlow's op errors (a truncated variables file) and protobuf's decode error (an
    unreadable saved_model.pb). Imports TensorFlow."""
    from google.protobuf import message  # noqa: PLC0415
    from tensorflow import errors  # noqa: PLC0415
    # IndexError: "Read less bytes than requested" from a truncated variables file
    return (errors.OpError, message.DecodeError, ValueError, OSError, TypeError, KeyError,
            IndexError)


def memory_bytes():
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_writable_dir(path, flag):
    """Creates directory `path` if needed and proves it writable with a probe file.

    Raises:
        UsageError: naming `flag`, the path and the reason (root ignores permission bits,
            so this writes rather than trusting os.access).
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        reason = e.strerror or one_line(e)
        raise UsageError(f"`{flag}` {str(path)!r} is not a writable directory: "
                         f"{reason}.") from None
    return path
