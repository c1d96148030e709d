"""Atomic publication of a finished directory (a SavedModel export).

The SavedModel is written to a hidden sibling directory (`.NAME.tmp-PID-...`) and renamed
onto the target only when complete: readers see the old export or the new one, never a
half-written directory. An existing export is swapped with `renameat2(RENAME_EXCHANGE)`
where the kernel has it (one atomic step), else moved aside and replaced (the target is
briefly absent, never partial). A crash leaves the previous export intact; stale temporary
directories of dead processes are removed by the next save.
"""

import ctypes
import os
import shutil
import sys


def publish(tmp, path):
    """Moves the finished directory `tmp` onto `path`; the old export (if any) is removed."""
    _fsync_dir(tmp)
    if not os.path.exists(path):
        os.rename(tmp, path)
    elif _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous export
    else:
        old = tmp + ".old"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(os.path.dirname(path))


def _exchange(a, b):
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(parent, name):
    """Deletes `.NAME.tmp-PID-*` directories whose process is gone (a killed export)."""
    prefix = f".{name}.tmp-"
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
