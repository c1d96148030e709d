"""tf.distribute for tfvae: the strategies the train app offers and the replica arithmetic.

```none
default        one device, TensorFlow's default strategy (no replicas)
mirrored       MirroredStrategy: one replica per GPU of this machine, or per logical CPU
               device with `devices=N` (N > 1 splits the host's CPU, for tests and trials)
multi_worker   MultiWorkerMirroredStrategy: one replica per worker process, configured by
               TF_CONFIG (cluster + this task), collective all-reduce over gRPC
```
Under N replicas each step's global batch B is split into shards b_r (sum_r b_r = B); each
replica computes its forward pass and loss on its shard, the optimizer *sums* the
replicas' gradients, so `replica_share` scales each replica's batch-mean loss by b_r / B:
the summed gradient is then the gradient of the global per-example mean, as on one device.

Each replica draws its own noise: the model's `tf.random.Generator`, created in the
strategy's scope, gives replica r a stream that is a function of (generator state, r); the
state is mirrored and checkpointed, so a resumed run continues every replica's stream.

Batch-level estimators (the minibatch TC and dimension-wise KL estimates, MMD, the density
ratio critics' negatives made by shuffling within a batch) see one shard of b = B / N
examples, not B: their per-replica estimates are averaged. Their bias is that of batch size
B / N (for the minibatch-weighted-sampling TC estimate, larger for smaller b), so the same
global batch gives slightly different estimates under a different replica count. Per-example
terms (reconstruction, analytic or Monte Carlo KL, IWAE) are unaffected: the loss is exactly
the global mean.
"""

import json
import os
import shutil
import tempfile

from tfvae._tf import tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def replica_share(loss, batch_size):
    """The replica's part of the global loss: its batch mean `loss` times b_r / sum_r b_r.

    With one replica (or outside `strategy.run`): `loss` unchanged, the same graph.

    Args:
        loss: scalar, a mean over the replica's `batch_size` examples.
        batch_size: b_r, the replica's examples (an int32 scalar tensor or int).
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    local = tf.cast(batch_size, loss.dtype)
    return loss * (local / context.all_reduce(tf.distribute.ReduceOp.SUM, local))


def cluster_spec():
    """TF_CONFIG as a dict (empty when unset); ValueError naming the problem if malformed."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e.msg} at character {e.pos}).") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise ValueError('TF_CONFIG needs {"cluster": {...}, "task": {"type": ..., "index": '
                         '...}}; got ' + raw[:120] + ".")
    return config


def set_logical_cpus(n):
    """Splits the host's CPU into `n` logical devices; must run before TensorFlow initializes
    its devices (before any op runs). ValueError if it is too late."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have == n:
            return
        raise ValueError(f"`devices={n}` must be set before TensorFlow initializes its "
                         f"devices (it already has {have} logical CPU device(s)); set it "
                         "first thing in the process.") from None


def make_strategy(name="default", devices=None, jit=False):
    """The tf.distribute.Strategy `name` (one of STRATEGIES); ValueError for a combination
    TensorFlow does not run.

    Args:
        name: "default", "mirrored" or "multi_worker".
        devices: for "mirrored" on a host without GPUs, N logical CPU devices (N replicas).
            None: every GPU (or the one CPU).
        jit: whether the train step will be XLA-compiled (checked against the strategy).
    """
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGIES)}; got {name!r}.")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int)
                                or devices < 1):
        raise ValueError(f"`devices` must be a positive int; got {devices!r}.")
    if name == "default":
        if devices not in (None, 1):
            raise ValueError(f"`devices={devices}` needs `strategy='mirrored'` (the default "
                             "strategy runs on one device).")
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        if devices not in (None, 1):
            raise ValueError("`devices` applies to `strategy='mirrored'`; a multi_worker "
                             "strategy has one replica per worker process (per GPU if any).")
        config = cluster_spec()
        if not config:
            raise ValueError("`strategy='multi_worker'` needs TF_CONFIG (the cluster and this "
                             "process's task); see README, 'Running on a cluster'.")
        if jit and not tf.config.list_physical_devices("GPU"):
            raise ValueError("XLA (jit) with the multi_worker strategy on CPU is not supported "
                             "by TensorFlow (\"Collectives are not yet implemented for CPU "
                             "devices when compiling with XLA\"); use --no-jit.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if devices is not None and devices > 1 and not gpus:
        if jit:
            raise ValueError("XLA (jit) cannot compile a step whose replicas are logical "
                             "devices of one CPU (each replica's variables live on its own "
                             "device, XLA's CPU backend sees one); use --no-jit.")
        set_logical_cpus(devices)
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:devices]
        return tf.distribute.MirroredStrategy(names)
    if devices is not None and gpus:
        if devices > len(gpus):
            raise ValueError(f"`devices={devices}` but this machine has {len(gpus)} GPU(s).")
        names = [d.name for d in tf.config.list_logical_devices("GPU")][:devices]
        return tf.distribute.MirroredStrategy(names)
    return tf.distribute.MirroredStrategy()


def is_chief(strategy):
    """Whether this process writes the run's outputs: always, except a multi-worker
    strategy's non-chief workers (TF_CONFIG task "worker" with index > 0 when there is no
    "chief" task; any "worker" when there is)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief)


def worker_dir(path, strategy):
    """Where this process writes `path`'s files: `path` for the chief, a fresh temporary
    folder for any other worker (which saves too, since saving synchronizes replicas, but
    whose copy is thrown away by `remove_worker_dir`)."""
    if is_chief(strategy):
        return path
    return tempfile.mkdtemp(prefix="tfvae-worker-")


def remove_worker_dir(path, strategy, chief_path):
    """Removes a non-chief worker's temporary folder (`path` != `chief_path`)."""
    if not is_chief(strategy) and os.path.abspath(path) != os.path.abspath(chief_path):
        shutil.rmtree(path, ignore_errors=True)
