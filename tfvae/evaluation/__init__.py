"""Evaluation: importance-weighted log-likelihoods and the ELBO's parts."""

from tfvae.evaluation.iwae import log_likelihood, naive_log_likelihood

__all__ = ["log_likelihood", "naive_log_likelihood"]
