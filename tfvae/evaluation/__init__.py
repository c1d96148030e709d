"""Evaluation: importance-weighted log-likelihoods and the ELBO's parts.

The callback that logs the decomposition during training is
`tfvae.callbacks.DecompositionCallback`.
"""

from tfvae.evaluation.decomposition import active_units, elbo_decomposition
from tfvae.evaluation.iwae import log_likelihood, log_likelihood_batch, naive_log_likelihood, \
    proposal

__all__ = ["log_likelihood", "log_likelihood_batch", "naive_log_likelihood", "proposal",
           "elbo_decomposition", "active_units"]
