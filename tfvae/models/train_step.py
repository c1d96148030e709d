"""The one training step of every model: the objective's terms, then the critics.

```none
train_step:  critics with critic_order "before" (each `critic_steps` updates, fresh encoding)
             model step on sum_t weight_t * mean_B term_t (encoder, heads, decoder only; under N
             replicas each replica's mean is weighted b_r / B: tfvae.distribute)
             critics with critic_order "after" (on the model step's forward pass)
```
Reported: `loss`, `reconstruction`, `kl` and `elbo` (when the posterior has a density, or a
term estimates the rate), each term by its name, its diagnostics as `<term>_<key>`, its
critic as `<term>_critic_loss` / `_accuracy_positive` / `_accuracy_negative`. A model step
whose loss or gradient is not finite is skipped whole (`tfvae.models._guarded`): weights and
Adam's moments stay as they were, its values stay out of the epoch's means, and
`model.step_guard` records it.
"""

import contextlib

from tfvae import distribute
from tfvae._tf import tf, tfp
from tfvae.models import _compile, _guarded, _inputs

BASE_METRICS = ("loss", "elbo", "reconstruction", "kl")
#: `compile`'s default steps per call into the compiled loop: with XLA the FMNIST-bin step
#: is ~13 ms on 2 cores and Keras' return to Python after each step cost 4-40 % (DESIGN.md)
STEPS_PER_EXECUTION = 16
CRITIC_METRICS = ("loss", "accuracy_positive", "accuracy_negative")


class TrainStep:
    """Mixed into `tfvae.VAE` before `tfk.Model`: train_step, test_step and the metrics.

    Needs from the model: `terms`, `forward(x, training, seed, decode)`, `_rate(fwd)`,
    `has_density`, `next_seed()` and `optimizer`.
    """

    #: whether `train_step` skips a model step whose loss or gradient is not finite (the
    #: train app's divergence guard then checks the weights at epoch ends only)
    guards_steps = True

    def metric_names(self):
        """Every scalar `fit` and `evaluate` report: the ELBO's parts, each term, each
        term's diagnostics ("<term>_<key>") and critic ("<term>_critic_<key>")."""
        names = list(BASE_METRICS) + [t.name for t in self.terms if t.name not in BASE_METRICS]
        names += [f"{t.name}_{k}" for t in self.terms for k in t.metric_keys]
        names += [f"{t.name}_critic_{k}" for t in self.terms if t.critic is not None
                  for k in CRITIC_METRICS]
        return names

    def compute_losses(self, x, training=False, seed=None):
        """All scalars the objective needs and `fit` reports, each a batch mean in nats."""
        return self._objective(self.forward(x, training=training, seed=seed))

    def _objective(self, fwd):
        values, loss = {}, tf.constant(0.0, tf.float32)
        for term in self.terms:
            value = tf.reduce_mean(term(fwd))
            values[term.name] = value
            loss += term.weight_at(fwd.step) * value
            values.update({f"{term.name}_{k}": v for k, v in term.metrics(fwd).items()})
        values["loss"] = loss
        values["reconstruction"] = tf.reduce_mean(fwd.distortion)
        if self.reports_elbo:
            values["kl"] = tf.reduce_mean(self._rate(fwd))
            values["elbo"] = -(values["reconstruction"] + values["kl"])
        return values

    @property
    def reports_elbo(self):
        """Whether the step reports `kl` and `elbo`: the posterior has a density, or a term
        estimates the rate."""
        return self.has_density or any(t.estimates_rate for t in self.terms)

    def critic_variables(self):
        """Variables owned by the terms' critics; they move only by their own optimizers."""
        return [v for t in self.terms if t.critic is not None
                for v in t.critic.trainable_variables]

    def model_variables(self):
        """Encoder, posterior, decoder, likelihood and prior variables: the ELBO's."""
        owned = {v.ref() for v in self.critic_variables()}
        return [v for v in self.trainable_variables if v.ref() not in owned]

    def _update_critics(self, order, fwd):
        """`critic_steps` updates of each critic of this order, each with its own seed."""
        logs = {}
        for i, term in enumerate(self.terms):
            if term.critic is None or term.critic_order != order:
                continue
            seeds = tfp.random.split_seed(fwd.seed_for(f"critic/{i}"), term.critic_steps)
            for step_seed in tf.unstack(seeds, num=term.critic_steps):
                result = term.update_critic(fwd, step_seed)
            logs.update({f"{term.name}_critic_{k}": v for k, v in result.items()})
        return logs

    def train_step(self, data):
        x = _inputs.unpack(data)
        seed = self.next_seed()
        critic_seed, step_seed = tfp.random.split_seed(seed, 2)
        logs = {}
        if any(t.critic is not None and t.critic_order == "before" for t in self.terms):
            # Critics that lead fit themselves to the current q first, on a fresh encoding.
            encoded = self.forward(x, training=True, seed=critic_seed, decode=False)
            logs.update(self._update_critics("before", encoded))
        with tf.GradientTape() as tape:
            fwd = self.forward(x, training=True, seed=step_seed)
            losses = self._objective(fwd)
            share = distribute.replica_share(losses["loss"], tf.shape(x)[0])
        variables = self.model_variables()
        grads = tape.gradient(share, variables)
        step = self.optimizer.iterations.read_value()  # before this step advances it
        finite = _guarded.apply_if_finite(self.optimizer, losses["loss"], grads, variables)
        self.step_guard.record(finite, step, losses)
        logs.update(self._update_critics("after", fwd))
        logs.update(losses)
        # A skipped step's values stay out of the epoch's running means (the guard reports it).
        return self._update_trackers(logs, weight=tf.cast(finite, tf.float32))

    def test_step(self, data):
        fwd = self.forward(_inputs.unpack(data), training=False)
        logs = self._objective(fwd)
        for i, term in enumerate(self.terms):
            if term.critic is not None:
                logs.update({f"{term.name}_critic_{k}": v for k, v in term.critic_metrics(
                    fwd, fwd.seed_for(f"critic/{i}")).items()})
        return self._update_trackers(logs)

    def _update_trackers(self, logs, weight=None):
        for name, value in logs.items():
            if name in self._trackers:
                if weight is None:
                    self._trackers[name].update_state(value)
                else:  # weight 0 drops the value (a NaN times 0 would still be NaN)
                    value = tf.where(weight > 0, value, tf.zeros_like(value))
                    self._trackers[name].update_state(value, sample_weight=weight)
        return {name: t.result() for name, t in self._trackers.items() if name in logs}

    @property
    def metrics(self):
        # Listed here so Keras resets them every epoch (else running means across epochs).
        return list(self._trackers.values())

    def compile(self, optimizer="rmsprop", *args, jit_compile="auto", run_eagerly=None,
                steps_per_execution=STEPS_PER_EXECUTION, **kwargs):
        """tf_keras' `compile` with the fast path as its defaults:

        - `jit_compile="auto"`: XLA wherever the model and the strategy support it, else
          the graph step with the reason logged (`tfvae.models._compile`);
        - `steps_per_execution=16` (Keras' default is 1): 16 steps per call into the
          compiled loop. It trades callback granularity for speed: batch-level callbacks
          (`on_train_batch_end`, progress bars, a checkpoint every N batches) run once per
          call, so every 16 steps and at the end of an epoch. Pass 1 for per-step
          callbacks. `train_on_batch`, `test_on_batch` and `predict_on_batch` run one
          step whatever the setting (Keras would pull 16 batches from the one given)."""
        jit_compile = _compile.resolve(self, jit_compile, run_eagerly)
        return super().compile(optimizer, *args, jit_compile=jit_compile,
                               run_eagerly=run_eagerly,
                               steps_per_execution=steps_per_execution, **kwargs)

    def fit(self, x=None, *args, **kwargs):
        _inputs.check_array_input(self, x)
        _inputs.check_array_input(self, kwargs.get("validation_data"))
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        _inputs.check_array_input(self, x)
        return super().evaluate(x, *args, **kwargs)

    @contextlib.contextmanager
    def _one_step_per_call(self):
        """Keras' compiled loops read `_steps_per_execution` when they run: at 1 inside,
        restored after."""
        spe = getattr(self, "_steps_per_execution", None)
        value = None if spe is None else int(spe.numpy())
        if value is None or value == 1:
            yield
            return
        spe.assign(1)
        try:
            yield
        finally:
            spe.assign(value)

    def train_on_batch(self, *args, **kwargs):
        with self._one_step_per_call():
            return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with self._one_step_per_call():
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        with self._one_step_per_call():
            return super().predict_on_batch(*args, **kwargs)
