"""Classical latent-variable models, and the tools that connect them to the VAE.

- `PPCA`: probabilistic PCA by closed form, EM or gradient ascent (Tipping & Bishop).
- `GaussianMixture`: mixtures of Gaussians by batch or online EM.
- `build_linear_vae`, `train_linear_vae`, `compare_with_ppca`, `posterior_collapse`: the
  linear VAE whose ELBO optimum is the pPCA MLE (Lucas et al. 2019).
- `gradient_variance`: reparameterization vs score-function gradients of the ELBO.
- `refine_posterior`: per-example Gaussian q with the decoder fixed; the amortization and
  approximation gaps (Cremer et al. 2018).
"""

from tfvae.latent.gmm import GaussianMixture
from tfvae.latent.gradients import ESTIMATORS, GradientStatistics, gradient_variance
from tfvae.latent.linear_vae import (ScalarNormalLikelihood, analytic_elbo, build_linear_vae,
                                     compare_with_ppca, posterior_collapse, subspace_distance,
                                     train_linear_vae)
from tfvae.latent.ppca import PPCA
from tfvae.latent.refine import InferenceGaps, refine_posterior

__all__ = ["PPCA", "GaussianMixture", "build_linear_vae", "train_linear_vae", "analytic_elbo",
           "compare_with_ppca", "posterior_collapse", "subspace_distance", "ScalarNormalLikelihood",
           "gradient_variance", "GradientStatistics", "ESTIMATORS", "refine_posterior",
           "InferenceGaps"]
