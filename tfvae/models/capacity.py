"""Capacity-controlled VAE (Burgess et al. 2018): gamma * |KL - C| with C ramped up.

```none
loss = E[-log p(x|z)] + gamma * | mean_B KL(q(z|x) || p(z)) - C(step) |
C(step) = C_max * min(1, step / capacity_steps)
```
The `capacity` term replaces `kl`. `fit` reports the current target C as
`capacity_target` beside the achieved `kl`, so the two can be compared in TensorBoard.

#### References
[1] Burgess et al. (2018), Understanding disentangling in beta-VAE, arXiv:1804.03599.
"""

from tfvae._tf import tfk
from tfvae.models import _family
from tfvae.models.vae import VAE
from tfvae.objectives.base import check_weight
from tfvae.objectives.capacity import check_capacity
from tfvae.registry import MODELS
from tfvae.schedules import check_steps


@MODELS.register("capacity")
class CapacityVAE(VAE):
    """A VAE trained to hold its rate at a target capacity C that rises linearly.

    Args:
        gamma: weight of |KL - C|, >= 0. Default value: 1000.0 (Burgess et al.).
        capacity_max: C_max in nats, >= 0. Default value: 25.0 (Burgess et al.).
        capacity_steps: optimizer steps over which C rises from 0 to C_max, a positive int.
            Default value: 100000 (Burgess et al.).
        **kwargs: the `VAE` arguments.
    """

    def __init__(self, gamma=1000.0, capacity_max=25.0, capacity_steps=100000,
                 name="capacity", **kwargs):
        _family.reject_terms(kwargs, "capacity")
        _family.reject_beta(kwargs, "capacity", "its rate weight is `gamma`")
        if callable(gamma):
            raise ValueError(f"`gamma` must be a number; got {gamma!r}.")
        gamma = check_weight(gamma, "gamma")
        capacity_max = check_capacity(capacity_max)
        capacity_steps = check_steps(capacity_steps, "capacity_steps")
        super().__init__(terms=["reconstruction",
                                {"name": "capacity", "weight": gamma,
                                 "capacity_max": capacity_max, "steps": capacity_steps}],
                         name=name, **kwargs)
        self.gamma = gamma
        self.capacity_max = capacity_max
        self.capacity_steps = capacity_steps
        self.capacity_term = self.terms[1]
        self._trackers["capacity_target"] = tfk.metrics.Mean(name="capacity_target")

    def _forward_and_losses(self, x, training):
        fwd, values = super()._forward_and_losses(x, training)
        values["capacity_target"] = self.capacity_term.target(fwd.step)
        return fwd, values

    @classmethod
    def add_arguments(cls, parser):
        _family.add_flag(parser, "--gamma", type=float,
                         help="capacity: weight of |KL - C| (default 1000)")
        _family.add_flag(parser, "--capacity-max", type=float, metavar="NATS",
                         help="capacity: final target C_max of the KL, nats (default 25)")
        _family.add_flag(parser, "--capacity-steps", type=int, metavar="N",
                         help="capacity: steps over which C rises from 0 to C_max "
                              "(default 100000)")

    @classmethod
    def kwargs_from_args(cls, args):
        return _family.kwargs_from(args, ["gamma", "capacity_max", "capacity_steps"])

    def get_config(self):
        return {**_family.config_without_terms(self), "gamma": self.gamma,
                "capacity_max": self.capacity_max, "capacity_steps": self.capacity_steps}
