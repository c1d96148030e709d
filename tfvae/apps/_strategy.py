"""The train app under a tf.distribute strategy: who writes, where the others write, and the
single-device copy that is exported.

```none
chief (or the only process)   the run directory: run.json, checkpoints, TensorBoard logs,
                              the export
other workers                 $TMPDIR/tfvae-worker-<run>-<task>/: their checkpoint and log
                              writes (saving synchronizes the replicas, so every worker
                              saves), removed when the run ends and when it starts again
every worker                  restores the chief's latest checkpoint (a shared filesystem
                              across hosts, as Keras' BackupAndRestore assumes)
```
"""

import os
import shutil
import tempfile

from tfvae import distribute
from tfvae._tf import tf
from tfvae.apps import _cli


def make(cfg):
    """The strategy of `--strategy`/`--devices`, before any TensorFlow op runs (logical
    CPU devices cannot be added later); UsageError for a combination TensorFlow refuses."""
    with _cli.user_errors():
        return distribute.make_strategy(cfg.strategy, cfg.devices, jit=cfg.jit)


def write_dir(run_dir, run_name, strategy):
    """`run_dir` for the chief; a fixed, emptied temporary folder for any other worker."""
    if distribute.is_chief(strategy):
        return run_dir
    resolver = strategy.cluster_resolver
    path = os.path.join(tempfile.gettempdir(),
                        f"tfvae-worker-{run_name}-{resolver.task_type}-{resolver.task_id}")
    shutil.rmtree(path, ignore_errors=True)  # a killed run's leftovers
    os.makedirs(path)
    return path


def remove_write_dir(path, run_dir):
    """Deletes a worker's temporary folder (never the chief's run directory)."""
    if os.path.abspath(path) != os.path.abspath(run_dir):
        shutil.rmtree(path, ignore_errors=True)


def barrier(strategy):
    """Waits until every worker reaches this point (one all-reduce); a no-op on one worker."""
    if strategy.extended._in_multi_worker_mode():  # noqa: SLF001
        strategy.reduce(tf.distribute.ReduceOp.SUM,
                        strategy.run(lambda: tf.constant(1.0)), axis=None)


def shard(dataset, strategy):
    """`dataset` with the global batches split by element across workers (the data are
    in-memory tensors, so there are no files to shard by)."""
    if not strategy.extended._in_multi_worker_mode():  # noqa: SLF001
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = \
        tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _weights(model):
    """The model's variables without its metric trackers (sync-on-read under a strategy:
    reading them would all-reduce, which only the chief would join)."""
    trackers = {v.ref() for m in model.metrics for v in m.variables}
    return [v for v in model.variables if v.ref() not in trackers]


def single_device_copy(model, build):
    """A model built by `build()` outside any strategy, holding `model`'s weights: what is
    exported, so a distributed run's SavedModel is the one a single-device run writes."""
    if getattr(model, "_distribution_strategy", None) is None:
        return model  # built outside any strategy: export it as it is
    copy = build()
    source, target = _weights(model), _weights(copy)
    if len(source) != len(target):
        raise ValueError("the single-device copy has a different set of variables.")
    for s, t in zip(source, target):
        t.assign(s.read_value())
    return copy
