"""Classical latent-variable models and the VAE tools that connect them to the VAE.

- `PPCA`: probabilistic PCA by closed form, EM or gradient ascent (Tipping & Bishop).
- `GaussianMixture`: mixtures of Gaussians by batch or online EM.
"""

from tfvae.latent.gmm import GaussianMixture
from tfvae.latent.ppca import PPCA

__all__ = ["PPCA", "GaussianMixture"]
