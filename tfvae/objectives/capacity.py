"""Capacity-controlled rate: gamma * |KL - C(step)|, C raised linearly from 0 to C_max.

```none
loss  = E[-log p(x|z)] + gamma * | mean_B KL(q(z|x) || p(z)) - C(step) |
C(step) = C_max * min(1, step / steps)                   (Burgess et al. 2018, Eq. 8)
d loss / d KL = gamma * sign(KL - C)
```
Below the target the term *rewards* rate (pushes the KL up), above it it penalizes it:
the objective asks z to carry about C nats about x — the mutual-information view, since
E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z)) bounds the information z keeps.
The absolute value is taken of the batch-mean KL, as in Burgess et al.'s code, so this is a
batch-level term; gamma is the term's weight.

#### References
[1] Burgess et al. (2018), Understanding disentangling in beta-VAE, arXiv:1804.03599.
"""

import math
import numbers

from tfvae._tf import tf
from tfvae.objectives.base import Term
from tfvae.registry import TERMS
from tfvae.schedules import LinearSchedule, check_steps


def check_capacity(capacity_max):
    if isinstance(capacity_max, bool) or not isinstance(capacity_max, numbers.Real) \
            or not math.isfinite(capacity_max) or capacity_max < 0:
        raise ValueError("`capacity_max` (C_max, nats) must be a finite number >= 0; got "
                         f"{capacity_max!r}.")
    return float(capacity_max)


@TERMS.register("capacity")
class CapacityTerm(Term):
    """|mean_B KL(q(z|x) || p(z)) - C(step)|, a scalar in nats.

    Args:
        weight: gamma, >= 0. Default value: 1.0.
        capacity_max: C_max in nats, >= 0. Default value: 25.0 (Burgess et al.'s dSprites
            setting).
        steps: the length of the linear ramp of C, a positive int. Default value: 100000.
    """

    batch_level = True

    def __init__(self, weight=1.0, capacity_max=25.0, steps=100000, name=None):
        super().__init__(weight=weight, name=name)
        self.capacity_max = check_capacity(capacity_max)
        self.steps = check_steps(steps, "steps")
        self.schedule = LinearSchedule(0.0, self.capacity_max, self.steps)

    def target(self, step):
        """C(step), a float32 scalar in nats."""
        return self.schedule(step)

    def __call__(self, fwd):
        return tf.abs(tf.reduce_mean(fwd.rate) - self.target(fwd.step))

    def get_config(self):
        return {**super().get_config(), "capacity_max": self.capacity_max, "steps": self.steps}
