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


class Term:
    """One summand of the training objective.

    Args:
        weight: a non-negative float, or a callable step -> weight (a schedule).
            Default value: 1.0.
        name: the metric name under which `fit` reports the term's batch mean.
    """

    batch_level = False
    #: set by terms that own a network with its own optimizer (AVB's T, FactorVAE's D).
    critic = None

    def __init__(self, weight=1.0, name=None):
        self.weight = check_weight(weight)
        self.name = name or self.registry_name

    def weight_at(self, step):
        """The weight at optimizer step `step` (an int64 scalar tensor)."""
        if callable(self.weight):
            return tf.cast(self.weight(step), tf.float32)
        return tf.constant(self.weight, tf.float32)

    def __call__(self, fwd):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.registry_name, "weight": self.weight}
