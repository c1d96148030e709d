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

from tfvae import validation
from tfvae._tf import tf
from tfvae.objectives.base import Term
from tfvae.registry import TERMS
from tfvae.schedules import LinearSchedule, check_steps


@TERMS.register("capacity")
class CapacityTerm(Term):
    """|mean_B KL(q(z|x) || p(z)) - C(step)|, a scalar in nats.

    Args:
        weight: gamma, >= 0. Default value: 1.0.
        capacity_max: C_max in nats, >= 0. Default value: 25.0 (Burgess et al.'s dSprites
            setting).
        steps: the length of the linear ramp of C, a positive int. Default value: 100000.
    """

    metric_keys = ("target",)

    def __init__(self, weight=1.0, capacity_max=25.0, steps=100000, name=None):
        super().__init__(weight=weight, name=name)
        self.capacity_max = validation.non_negative(capacity_max, "capacity_max (C_max, nats)")
        self.steps = check_steps(steps, "steps")
        self.schedule = LinearSchedule(0.0, self.capacity_max, self.steps)

    def target(self, step):
        """C(step), a float32 scalar in nats."""
        return self.schedule(step)

    def __call__(self, fwd):
        return tf.abs(tf.reduce_mean(fwd.rate) - self.target(fwd.step))

    def metrics(self, fwd):
        return {"target": self.target(fwd.step)}
