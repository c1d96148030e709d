"""Adam over one flat vector of parameters (`FlatAdam`), the train app's optimizer.

tf_keras' Adam keeps two moment variables per model variable and updates each on its own.
Inside an XLA-compiled train step that is three kernels per variable (the two moments and
the weight), each compiled at the first call, and all of them inside the step guard's
`cond` (`tfvae.models._guarded`), which skips a non-finite step. `FlatAdam` keeps both
moments as one vector each, of every variable it trains concatenated, so the moments take
one update and each weight one slice of the step: fewer and simpler kernels, and less
memory to compile them (`benchmarks/optimizer_memory.py` measures it; the figures are in
benchmarks/README.md). The arithmetic is Adam's, operation for operation (tf_keras'
`Adam.update_step`), so the weights after each step are those of tf_keras' Adam.

A step the guard skips (a non-finite loss or gradient) leaves the moments and the weights
exactly as they were, without a conditional, and advances `iterations` as tf_keras'
optimizers do (`apply_gradients_if_finite`). The gradients are checked on the flat vector
the step builds anyway, squared (ok below: the loss and every g^2 finite; a finite gradient
past sqrt(max float) would make v infinite, then NaN, then the weights), and the skip is
folded into Adam's scalar coefficients:

```none
g' = g if ok else 0        b1 = 1 - beta_1 if ok else 0        b2 = 1 - beta_2 if ok else 0
m <- m + (g' - m) b1       v <- v + (g'^2 - v) b2              w <- w - (step if ok else 0)
```
With ok, that is Adam's arithmetic, operation for operation. Without it, m + (-m) 0 is m
bit for bit, because m and v are never -0 (they start at +0, and a sum is -0 only when
both of its terms are), and w - 0 is w. A select on each of m, v and the step (the first
design) and a second concatenation of the gradients to check them made the train app's
step measurably slower (benchmarks/README.md).
"""

import contextlib

from tfvae._tf import tf, tfk


class FlatAdam(tfk.optimizers.Adam):
    """Adam (Kingma & Ba, 2015) with its first and second moments held in two flat vectors.

    The same hyperparameters and results as `tf_keras.optimizers.Adam`, for float
    variables of one dtype (a `tf.IndexedSlices` gradient is made dense, which gives tf_keras'
    sparse update's values). Its checkpoint holds the two vectors (`m`, `v`) instead of two
    variables per model variable, so it restores only what a `FlatAdam` saved for the same
    variables, in the same order.

    Args:
        learning_rate: a float or a `tf_keras` learning-rate schedule. Default value: 1e-3.
        beta_1, beta_2, epsilon: Adam's. Default values: 0.9, 0.999, 1e-7.
        **kwargs: tf_keras optimizer arguments (`global_clipnorm`, `clipnorm`, `clipvalue`,
            `name`). Not supported (ValueError): `amsgrad`, `adaptive_epsilon`,
            `weight_decay`, `use_ema`; a step that the guard skips must leave every
            variable as it was, and weight decay and a moving average would not.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="FlatAdam", **kwargs):
        for key in ("amsgrad", "adaptive_epsilon", "use_ema"):
            if kwargs.get(key):
                raise ValueError(f"FlatAdam does not support `{key}=True`; use "
                                 "tf_keras.optimizers.Adam for it.")
        if kwargs.get("weight_decay"):
            raise ValueError("FlatAdam does not support `weight_decay`; use "
                             "tf_keras.optimizers.AdamW for it.")
        # tf_keras compiles its per-variable update with XLA when asked; FlatAdam's one
        # update is traced where it is called (inside the XLA step, in the train app).
        kwargs.pop("jit_compile", None)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, jit_compile=False, **kwargs)
        self._layout = None

    def build(self, var_list):
        """Creates `m` and `v`, zero vectors of the total size of `var_list`, and records
        each variable's offset in them (idempotent)."""
        var_list = list(var_list)
        tfk.optimizers.Optimizer.build(self, var_list)  # the index, not Adam's slots
        if getattr(self, "_built", False):
            return
        dtypes = {v.dtype.base_dtype for v in var_list}
        if len(dtypes) > 1 or not all(d.is_floating for d in dtypes):
            raise TypeError("FlatAdam trains float variables of one dtype; got "
                            f"{sorted(d.name for d in dtypes)}.")
        if not all(v.shape.is_fully_defined() for v in var_list):
            raise ValueError("FlatAdam needs variables of static shapes.")
        self._built = True
        self._layout, offset = self._no_dependency({}), 0  # not a checkpoint child
        for var in var_list:
            size = var.shape.num_elements()
            self._layout[self._var_key(var)] = (offset, size)
            offset += size
        dtype = dtypes.pop() if dtypes else tf.float32
        strategy = tf.distribute.get_strategy()
        with (strategy.extended.colocate_vars_with(var_list[0]) if var_list
              else contextlib.nullcontext()):
            self.m = self.add_variable([offset], dtype, name="m")
            self.v = self.add_variable([offset], dtype, name="v")

    @staticmethod
    def can_restore(path, name):
        """Whether checkpoint `path` holds, as its child `name`, an optimizer whose state a
        `FlatAdam` restores: one without slots yet, or with two flat vectors. False for
        tf_keras' Adam with moments per variable (restoring them would leave the flat
        moments at zero, silently)."""
        from tensorflow.core.protobuf import trackable_object_graph_pb2  # noqa: PLC0415
        reader = tf.train.load_checkpoint(path)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

        def child(node, local_name):
            return next((c.node_id for c in graph.nodes[node].children
                         if c.local_name == local_name), None)
        saved = child(0, name)
        saved = None if saved is None else child(saved, "_variables")
        if saved is None:
            return True
        # An optimizer lists `iterations`, then its slots, in `_variables`: FlatAdam's are
        # `m` and `v`, two vectors; tf_keras' Adam has two per variable, of its shape.
        slots = [graph.nodes[c.node_id] for c in graph.nodes[saved].children][1:]
        shapes = reader.get_variable_to_shape_map()
        ranks = {len(shapes[a.checkpoint_key]) for node in slots for a in node.attributes
                 if a.name == "VARIABLE_VALUE" and a.checkpoint_key in shapes}
        return not slots or (len(slots) == 2 and ranks == {1})

    def apply_gradients(self, grads_and_vars, name=None, skip_gradients_aggregation=False,
                        finite=None, **kwargs):
        """tf_keras' `apply_gradients`; with `finite` given, `apply_gradients_if_finite`'s
        step (this returns `iterations`, as tf_keras does)."""
        self._finite, self._decision = finite, None
        try:
            return super().apply_gradients(
                grads_and_vars, name=name,
                skip_gradients_aggregation=skip_gradients_aggregation, **kwargs)
        finally:
            self._finite = None

    def apply_gradients_if_finite(self, grads_and_vars, finite=True, **kwargs):
        """A step taken only where `finite` (a scalar bool tensor, e.g. whether the loss is
        finite) is True and every gradient's square is finite; otherwise the moments and the
        variables stay as they were, bit for bit, and only `iterations` advances. Returns
        that decision, a scalar bool tensor: True where the step was taken. Under replicas
        the gradients are the summed ones, so every replica decides alike. `kwargs` are
        `apply_gradients`'."""
        self.apply_gradients(grads_and_vars, finite=tf.convert_to_tensor(finite, tf.bool),
                             **kwargs)
        decision, self._decision = self._decision, None
        return decision

    def _distributed_apply_gradients_fn(self, distribution, grads_and_vars, **kwargs):
        grads_and_vars = list(grads_and_vars)
        finite = getattr(self, "_finite", None)

        def update(m, *grads):
            # Called once per replica's copy of `m`; the other variables read and written
            # here resolve to the same replica's copies (tf.distribute's update context).
            # Every replica sees the same summed gradients, so any copy's decision is all's.
            self._decision = self._flat_step(m, grads, [v for _, v in grads_and_vars],
                                             finite)

        distribution.extended.update(self.m, update, args=tuple(g for g, _ in grads_and_vars),
                                     group=False)
        return self.iterations.assign_add(1)

    def _flat_step(self, m, grads, variables, finite):
        """One Adam step on the flat moments `m` (this replica's), `self.v` and `variables`.

        Adam's arithmetic as tf_keras' `Adam.update_step` orders it; variables this call
        has no gradient for keep their weights and moments. With `finite` (a scalar bool),
        the step is taken only where it and every gradient's square are finite (the module's
        docstring); returns that decision, or None without `finite`."""
        for var in variables:
            if self._var_key(var) not in self._layout:
                raise ValueError(f"FlatAdam was built without variable {var.name!r}; build "
                                 "it with every variable it will train.")
        v = self.v
        dtype = m.dtype
        given = {self._var_key(var): g for g, var in zip(grads, variables)}
        pieces = [tf.zeros([size], dtype) if key not in given else
                  tf.reshape(tf.convert_to_tensor(given[key]), [-1])
                  for key, (_, size) in self._layout.items()]
        g = tf.concat(pieces, 0) if len(pieces) > 1 else pieces[0]
        lr = tf.cast(self.learning_rate, dtype)
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), local_step)
        alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        b1, b2 = tf.constant(1 - self.beta_1, dtype), tf.constant(1 - self.beta_2, dtype)
        if finite is not None:  # the skip in the scalars: see the module's docstring
            # g^2, not g: a finite gradient whose square overflows would make v infinite,
            # and the next such step v NaN, then the weights (Adam's own square of it).
            finite = tf.logical_and(tf.convert_to_tensor(finite, tf.bool),
                                    tf.reduce_all(tf.math.is_finite(tf.square(g))))
            g = tf.where(finite, g, tf.zeros_like(g))
            b1, b2 = (tf.where(finite, b, tf.zeros_like(b)) for b in (b1, b2))
        m_value, v_value = m.read_value(), v.read_value()
        m_new = m_value + (g - m_value) * b1
        v_new = v_value + (tf.square(g) - v_value) * b2
        step = (m_new * alpha) / (tf.sqrt(v_new) + self.epsilon)
        if finite is not None:  # w - 0 is w, bit for bit
            step = tf.where(finite, step, tf.zeros_like(step))
        if len(given) < len(self._layout):  # those without a gradient keep their state
            keep = tf.concat([tf.fill([size], key not in given)
                              for key, (_, size) in self._layout.items()], 0)
            m_new = tf.where(keep, m_value, m_new)
            v_new = tf.where(keep, v_value, v_new)
            step = tf.where(keep, tf.zeros_like(step), step)
        m.assign(m_new)
        v.assign(v_new)
        for var in variables:
            offset, size = self._layout[self._var_key(var)]
            var.assign_sub(tf.reshape(step[offset:offset + size], var.shape))
        return finite

    def update_step(self, gradient, variable):
        raise NotImplementedError("FlatAdam updates every variable at once "
                                  "(`apply_gradients`), not one at a time.")

    def get_config(self):
        config = super().get_config()
        config.pop("jit_compile", None)
        return config

