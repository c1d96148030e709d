"""The rate: KL(q(z|x) || p(z)), nats per example. beta-VAE is this term's weight."""

from tfvae.objectives.base import Term
from tfvae.registry import TERMS


@TERMS.register("kl")
class KLTerm(Term):
    """KL(q(z|x) || p(z)), [B] nats: analytic when TFP has it, else Monte Carlo (see
    `ForwardPass.rate` and the model's `kl` argument)."""

    def __call__(self, fwd):
        return fwd.rate
