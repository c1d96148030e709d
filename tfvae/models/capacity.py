"""Capacity-controlled beta-VAE (Burgess et al. 2018): gamma * |KL - C(step)|.

```none
loss = E[-log p(x|z)] + gamma * | mean_B KL(q(z|x) || p(z)) - C(step) |,
C(step) = capacity_max * min(1, step / capacity_steps)
```
The target C is reported as `capacity_target`.

#### References
[1] Burgess et al. (2018), Understanding disentangling in beta-VAE, arXiv:1804.03599.
"""

from tfvae import validation
from tfvae.models.vae import VAE
from tfvae.registry import MODELS


@MODELS.register("capacity")
class CapacityVAE(VAE):
    """A VAE trained to hold its rate at a target capacity C that rises linearly.

    Args:
        gamma: weight of |KL - C|, >= 0. Default value: 1000.0 (Burgess et al.).
        capacity_max: C_max in nats, >= 0. Default value: 25.0 (Burgess et al.).
        capacity_steps: optimizer steps over which C rises from 0 to C_max.
            Default value: 100000 (Burgess et al.).
        **kwargs: the `VAE` arguments.
    """

    derived = ("terms", "beta", "objective")

    def __init__(self, gamma=1000.0, capacity_max=25.0, capacity_steps=100000, **kwargs):
        validation.non_negative(gamma, "gamma")
        validation.positive_int(capacity_steps, "capacity_steps")
        super().__init__(terms=["reconstruction", {
            "name": "capacity", "weight": gamma, "capacity_max": capacity_max,
            "steps": capacity_steps}], **kwargs)
        term = self.terms[1]
        self.gamma, self.capacity_max, self.capacity_steps = (term.weight, term.capacity_max,
                                                              term.steps)
