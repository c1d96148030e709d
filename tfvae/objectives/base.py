"""The objective-term contract.

```none
loss = sum_t weight_t(step) * mean_B term_t(fwd)
```
A term returns nats per example, [B], or a scalar when it is a batch-level quantity
(`batch_level = True`: MMD, minibatch TC). Weights are applied by the model, never inside.
"""

import numbers

from tfvae._tf import tf


def check_weight(weight, name="weight"):
    if callable(weight):
        return weight
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not weight >= 0:
        raise ValueError(f"`{name}` must be a non-negative number or a schedule; got {weight!r}.")
    return float(weight)


class Term(tf.Module):
    """One summand of the training objective.

    A tf.Module, so a critic the term owns is tracked (checkpointed) by the model.
    Terms that own a critic set `critic` and implement `update_critic(fwd) -> dict`,
    which the model calls after its own step; the critic's variables are split off the
    model's by ownership (`critic.trainable_variables`), never by name.

    Args:
        weight: a non-negative float, or a callable step -> weight (a schedule).
            Default value: 1.0.
        name: the metric name under which `fit` reports the term's batch mean.
    """

    batch_level = False
    #: set by terms that own a network with its own optimizer (AVB's T, FactorVAE's D).
    critic = None

    def __init__(self, weight=1.0, name=None):
        super().__init__(name=name or self.registry_name)
        self.weight = check_weight(weight)

    def weight_at(self, step):
        """The weight at optimizer step `step` (an int64 scalar tensor)."""
        if callable(self.weight):
            return tf.cast(self.weight(step), tf.float32)
        return tf.constant(self.weight, tf.float32)

    def __call__(self, fwd):
        raise NotImplementedError

    def update_critic(self, fwd):
        """One step of the term's critic on this forward pass; returns metrics (scalars)."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.registry_name, "weight": self.weight}
