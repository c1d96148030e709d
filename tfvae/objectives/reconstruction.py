"""The distortion: -E_q(z|x)[log p(x|z)], nats per example."""

from tfvae.objectives.base import Term
from tfvae.registry import TERMS


@TERMS.register("reconstruction")
class ReconstructionTerm(Term):
    """-(1/S) sum_s log p(x | z_s), [B] nats."""

    def __call__(self, fwd):
        return fwd.distortion
