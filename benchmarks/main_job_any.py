"""The main job (`python -m tfvae.apps.train`) timed the same way at any revision of tfvae.

    PYTHONPATH=/path/to/checkout python benchmarks/main_job_any.py --epochs 10 [-- APP FLAGS]

`memory_profile.py` reads the main job through the train app's internals, which change
between revisions; this script uses only what every revision has: the app's `main` run as
`python -m tfvae.apps.train` runs it, and tf_keras's `Model.fit`, which it wraps to add one
timing callback. So one script measures an old checkout and the current one alike
(`speed_history.py` runs it against each). It imports nothing of this checkout: the tfvae it
runs is the first on `sys.path` (PYTHONPATH).

Printed as one result line (common.RESULT_PREFIX): training images/s (the images of an
epoch, steps x batch size or the training images if fewer, over the median epoch time after
the first; an epoch is timed from `on_epoch_begin` to the start of its validation), the
peak RSS (VmHWM, exact) after the first compiled train call and at the end, the test ELBO
from the export's metadata.json (a lower bound on log p(x), nats per image), and the tfvae
that ran.
"""

import argparse
import importlib.abc
import importlib.util
import json
import os
import runpy
import statistics
import sys
import tempfile
import time

if __package__:  # imported (the tests)
    from benchmarks._lockstep import TURNS
else:  # run as a script: its folder is first on sys.path; the checkout's may lack the module
    from _lockstep import TURNS  # stdlib only: nothing heavy before the app

#: common.RESULT_PREFIX, and `peak_rss_mb` below is common's: importing benchmarks.common
#: here would import NumPy (and its BLAS threads) before the app caps malloc's arenas, and the
#: `benchmarks` first on the path is the checkout's, not this one's.
RESULT_PREFIX = "BENCHMARK_RESULT "


def peak_rss_mb():
    """VmHWM of this process, MB (MiB)."""
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls `then(module)` once the module `name` has been imported, wherever from."""

    def __init__(self, name, then):
        self.name, self.then, self.busy = name, then, False

    def find_spec(self, name, path, target=None):
        if name != self.name or self.busy:  # busy: the find_spec call below
            return None
        self.busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy = False
        if spec is None:  # not installed: the import fails as it would without this hook
            return None
        run = spec.loader.exec_module

        def exec_module(module):  # a mere find_spec (TensorFlow makes one) never gets here
            run(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
                self.then(module)

        spec.loader.exec_module = exec_module
        return spec


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    times, steps, phases = [], [], {}

    def add_timer(tf_keras):
        """Wraps tf_keras.Model.fit to put a Timer first among its callbacks."""

        class Timer(tf_keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self._supports_tf_logs = True  # so that it adds no host sync per call

            def on_epoch_begin(self, epoch, logs=None):
                self.t0, self.t1 = time.perf_counter(), None

            def on_train_batch_begin(self, batch, logs=None):
                self.first = batch
                TURNS.steps_begin()

            def on_train_batch_end(self, batch, logs=None):  # batch: the call's last step
                TURNS.steps_end(batch - self.first + 1)
                if "first_step" not in phases:
                    phases["first_step"] = peak_rss_mb()

            def on_test_begin(self, logs=None):  # the epoch's validation starts
                if getattr(self, "t0", None) is not None and self.t1 is None:
                    self.t1 = time.perf_counter()
                TURNS.epoch_end()

            def on_epoch_end(self, epoch, logs=None):
                TURNS.epoch_end()  # no validation (else a no-op: on_test_begin's counted)
                times.append((self.t1 or time.perf_counter()) - self.t0)
                steps.append(self.params.get("steps"))
                self.t0 = None

        fit = tf_keras.Model.fit

        def timed_fit(self, *a, callbacks=None, **k):
            return fit(self, *a, callbacks=[Timer(), *(callbacks or [])], **k)

        tf_keras.Model.fit = timed_fit

    TURNS.begin()  # under a lockstep coordinator (_lockstep.py): this process's first turn
    # Patched when the app imports tf_keras, not before: importing TensorFlow here would
    # come before the app caps malloc's arenas (tfvae.apps._cli), which changes its RSS.
    sys.meta_path.insert(0, _AfterImport("tf_keras", add_timer))
    with tempfile.TemporaryDirectory() as tmp:
        export = os.path.join(tmp, "saved")
        sys.argv = ["tfvae.apps.train", "--epochs", str(args.epochs), "--verbose", "0",
                    "--logdir", os.path.join(tmp, "runs"), "--export-dir", export, *extra]
        try:
            runpy.run_module("tfvae.apps.train", run_name="__main__", alter_sys=True)
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        paths = [os.path.join(d, "metadata.json") for d, _, files in os.walk(export)
                 if "metadata.json" in files]
        if not paths or not times:
            raise RuntimeError("the train app exported no metadata.json or timed no epoch "
                               f"(epochs timed: {len(times)}): is it a tf_keras fit?")
        with open(paths[0]) as f:
            meta = json.load(f)
    import tfvae  # noqa: PLC0415  (already imported by the app)
    # Every revision's metadata has the batch size, the training images and metrics.test; an
    # epoch is whole batches (now) or ends on a partial one (64645dd): min() counts both.
    images = min(steps[-1] * meta["config"]["batch_size"], meta["dataset"]["train_examples"])
    steady = statistics.median(times[1:] or times)
    row = dict(contender="tfvae main job", tfvae=os.path.dirname(tfvae.__file__),
               epochs=args.epochs, epoch_seconds=[round(t, 3) for t in times],
               images_per_epoch=images, train_images_per_s=images / steady,
               test_elbo=meta["metrics"]["test"].get("elbo"), peak_rss_mb=peak_rss_mb(),
               peak_rss_by_phase_mb={**phases, "end": peak_rss_mb()},
               images_per_step=images / steps[-1])
    if TURNS.active:
        row["lockstep_chunks"] = TURNS.chunks
    print(RESULT_PREFIX + json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
