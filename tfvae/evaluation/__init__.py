"""Evaluation: importance-weighted log-likelihoods and the ELBO's parts."""

from tfvae.evaluation.decomposition import DecompositionCallback, active_units, elbo_decomposition
from tfvae.evaluation.iwae import log_likelihood, naive_log_likelihood

__all__ = ["log_likelihood", "naive_log_likelihood", "elbo_decomposition", "active_units",
           "DecompositionCallback"]
