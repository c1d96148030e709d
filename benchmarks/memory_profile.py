"""Peak RSS of the main job (`python -m tfvae.apps.train`, FMNIST-bin) by phase.

    python benchmarks/memory_profile.py                  # the train app's defaults, 10 epochs
    python benchmarks/memory_profile.py --epochs 1 -- --strategy mirrored --devices 2 --no-jit

Runs the train app in this process, as `python -m tfvae.apps.train` runs it (malloc arenas
capped before TensorFlow is imported; `--no-arena-cap` to compare without; arguments after
`--` go to the app; each run gets a fresh --logdir/--export-dir in a temporary folder) and
prints one result line (common.report) with the resident set size and its peak (VmRSS,
VmHWM from /proc/self/status, exact for this process) after each phase:

```none
import       tfvae.apps.train imported (TensorFlow, TFP, tf_keras, tfvae)
data         the run's data loaded (Data constructed)
first_step   after the first compiled train call (tracing and compiling included)
end          after training, the final evaluation and the export
```
with the resident set split into anonymous and file-backed pages (RssAnon, RssFile) at each
phase. The file part is clean pages of the shared libraries, and how many of them a process
maps depends on the page cache, not on the run: right after an install, with the libraries'
files in the cache as pip wrote them, the same run reads more (README.md, "Several devices
and clusters"). Compare runs after `echo 1 > /proc/sys/vm/drop_caches` (root) or from one
checkout. Also reported: the training images/s of the run (images of an epoch over the
median epoch time after the first; the train app's EpochTimer stops at the epoch's
validation) and its test ELBO (a lower bound on log p(x), nats per image; None for a model
that does not report it).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import report, status_mb  # noqa: E402


def _status_mb(*keys):
    """`common.status_mb`, to 0.1 MB."""
    return tuple(round(v, 1) for v in status_mb(*keys))


def memory_mb():
    """(rss, peak rss) of this process in MB (MiB), exact (the kernel's counters)."""
    return _status_mb("VmRSS", "VmHWM")


def split_mb():
    """(anonymous, file-backed) resident MB now: RssAnon, RssFile. The file part is clean
    pages of the shared libraries; how many of them a run maps depends on the page cache,
    not on the run (README.md, "Several devices and clusters")."""
    return _status_mb("RssAnon", "RssFile")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--no-arena-cap", action="store_true",
                   help="leave glibc's malloc arenas at its default (the apps cap them at "
                        "tfvae.apps._cli.MALLOC_ARENAS, as this script does otherwise)")
    args = p.parse_args(own)

    from tfvae.apps import _cli  # noqa: PLC0415  (imports no TensorFlow)
    capped = False if args.no_arena_cap else _cli.limit_malloc_arenas()
    phases = {}
    from tfvae.apps import _train_data  # noqa: PLC0415
    from tfvae.apps import train as train_app  # noqa: PLC0415
    phases["import"] = memory_mb()
    split = {"import": split_mb()}
    original = _train_data.Data.__init__

    def data_init(self, *a, **k):
        original(self, *a, **k)
        phases["data"] = memory_mb()
        split["data"] = split_mb()
    _train_data.Data.__init__ = data_init

    from tfvae import callbacks as callbacks_lib  # noqa: PLC0415
    from tfvae._tf import tfk  # noqa: PLC0415

    class FirstStep(tfk.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if "first_step" not in phases:
                phases["first_step"], split["first_step"] = memory_mb(), split_mb()

    callbacks_lib.register_callback("_memory_profile")(lambda context: FirstStep())
    with tempfile.TemporaryDirectory() as tmp:
        cfg, recipe, _ = train_app.parse(["--epochs", str(args.epochs), "--verbose", "0",
                                          "--logdir", os.path.join(tmp, "runs"),
                                          "--export-dir", os.path.join(tmp, "saved"), *extra])
        result = train_app.train(cfg, recipe, out=lambda s: None)
        phases["end"] = memory_mb()
        split["end"] = split_mb()
    times = result.epoch_seconds
    steady = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
    row = dict(contender="tfvae_train_app", argv=extra, epochs=args.epochs,
               malloc_arenas=_cli.MALLOC_ARENAS if capped else "glibc default",
               train_images_per_s=min(result.data.num_train,
                                      result.data.steps_per_epoch * cfg.batch_size) / steady,
               test_elbo=result.metrics.get("elbo"),
               rss_mb={k: v[0] for k, v in phases.items()},
               peak_rss_by_phase_mb={k: v[1] for k, v in phases.items()},
               rss_anon_file_mb={k: list(v) for k, v in split.items()})
    report(**row)
    return row


if __name__ == "__main__":
    main()
