"""An optimizer step that is skipped, whole, when the loss or any gradient is not finite, or
any gradient's square is not (Adam's second moment would overflow, then turn NaN, and the
weights with it, from finite gradients).

A NaN or Inf gradient applied once poisons every weight it touches and Adam's moments with
it; skipping the step keeps the weights and the optimizer's moments exactly as they were
(only `optimizer.iterations` advances, so step-keyed seeds and schedules stay aligned with a
run that had no bad step). The decision is taken on the gradients after they are summed
across replicas, so every replica skips or applies together. This is the pattern of
tf_keras' LossScaleOptimizer: a `cond` around `apply_gradients`, taken in the replica
context where the strategy allows it and in the cross-replica context otherwise (a
`merge_call` may not run inside a replica-context `cond`). A `tfvae.optimizers.FlatAdam`
skips by a select on its flat vectors instead of a `cond` where no `merge_call` is needed
(the default strategy), checking the gradients on its own flat vector: the same result,
with less for XLA to compile and a faster step.
"""

from tfvae._tf import tf
from tfvae.optimizers import FlatAdam


def _all_finite(loss, grads):
    """Whether `loss` is finite and so is the square of every gradient element: one
    reduction over all the gradients flattened and concatenated (per dtype). A reduction
    per gradient made XLA compile ~40 more kernels and tens of MB more resident memory at
    the first call (benchmarks/README.md). Squared because Adam squares each gradient: one
    past sqrt(max float) makes its second moment infinite, then NaN, then the weights,
    although the gradient itself was finite."""
    flat = {}
    for t in grads:
        if t is None:
            continue
        if isinstance(t, tf.IndexedSlices):  # only the rows it holds can be non-finite
            t = t.values
        flat.setdefault(t.dtype, []).append(tf.reshape(t, [-1]))
    checks = [tf.reduce_all(tf.math.is_finite(loss))]
    checks += [tf.reduce_all(tf.math.is_finite(tf.square(tf.concat(ts, 0))))
               for ts in flat.values()]
    return tf.reduce_all(tf.stack(checks))


def apply_if_finite(optimizer, loss, grads, variables):
    """Applies `grads` to `variables` with `optimizer` when `loss` and every gradient's
    square are finite; otherwise only advances `optimizer.iterations`. Returns the decision (a bool
    tensor), the same on every replica. Call it in a replica context (a train step)."""
    variables = list(variables)
    with tf.init_scope():  # slots are created outside the cond, once
        optimizer.build(variables)
    context = tf.distribute.get_replica_context()
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    if context.num_replicas_in_sync > 1:
        pairs = optimizer.aggregate_gradients(pairs)
        # Every replica must take the same branch: the loss differs per replica.
        bad = tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(loss))), tf.float32)
        bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
        loss = tf.where(bad > 0, float("nan"), 0.0)  # non-finite when any replica's is
    grads = [g for g, _ in pairs]
    variables = [v for _, v in pairs]

    def apply():
        optimizer.apply_gradients(zip(grads, variables), skip_gradients_aggregation=True)

    def skip():
        optimizer.iterations.assign_add(1, read_value=False)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        if isinstance(optimizer, FlatAdam):
            # No conditional, and the gradients checked on the flat vector FlatAdam builds
            # anyway, instead of a second concatenation of them here.
            return optimizer.apply_gradients_if_finite(
                zip(grads, variables), tf.reduce_all(tf.math.is_finite(loss)),
                skip_gradients_aggregation=True)
        finite = _all_finite(loss, grads)
        tf.__internal__.smart_cond.smart_cond(finite, apply, skip)
        return finite

    def cross_replica(strategy, loss, grads):
        # After the all-reduce every replica holds the same values: check the first's.
        first = lambda v: strategy.experimental_local_results(v)[0]  # noqa: E731
        finite = _all_finite(first(loss), [first(g) for g in grads])

        def apply_each():
            strategy.extended.call_for_each_replica(
                lambda g: optimizer.apply_gradients(
                    zip(g, variables), skip_gradients_aggregation=True), args=(grads,))
        tf.__internal__.smart_cond.smart_cond(finite, apply_each, skip)
        return finite
    return context.merge_call(cross_replica, args=(loss, grads))


class StepGuard(tf.Module):
    """The skipped-step record a model carries (checkpointed with it, so a resumed run keeps
    counting): steps skipped in total, the current and the longest run of consecutive
    skipped steps, the last skipped step, and which reported values (by `names`) were not
    finite there, as a 0/1 mask (never the NaN itself, so the weights stay finite)."""

    def __init__(self, names):
        super().__init__(name="step_guard")
        self.names = tuple(names)
        int_var = lambda n: tf.Variable(0, dtype=tf.int64, trainable=False, name=n)  # noqa: E731
        self.skipped, self.streak = int_var("skipped"), int_var("streak")
        self.longest, self.last_step = int_var("longest"), int_var("last_step")
        self.bad_mask = tf.Variable(tf.zeros([len(self.names)]), trainable=False,
                                    name="bad_mask")

    def record(self, finite, step, values):
        """Updates the record after a step; `values` maps names to the step's scalars."""
        skipped = tf.cast(tf.logical_not(finite), tf.int64)
        self.skipped.assign_add(skipped)
        self.streak.assign((self.streak + skipped) * skipped)
        self.longest.assign(tf.maximum(self.longest, self.streak))
        mask = tf.stack([tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(
            values[n]))), tf.float32) if n in values else 0.0 for n in self.names])
        self.bad_mask.assign(tf.where(finite, self.bad_mask, mask))
        self.last_step.assign(tf.where(finite, self.last_step, tf.cast(step, tf.int64)))

    def bad_names(self):
        """The names whose values were not finite at the last skipped step (eager)."""
        return [n for n, m in zip(self.names, self.bad_mask.numpy()) if m > 0]
