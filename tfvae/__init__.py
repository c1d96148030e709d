"""tfvae: variational autoencoders on TensorFlow Probability and tf_keras.

```python
import tfvae
model = tfvae.VAE(latent_dim=32, posterior="full_covariance", likelihood="bernoulli")
```
"""

from tfvae import data
from tfvae import evaluation
from tfvae import export
from tfvae import likelihoods
from tfvae import objectives
from tfvae import posteriors
from tfvae import priors
from tfvae.models.avb import AVB
from tfvae.models.vae import VAE
from tfvae.types import ForwardPass
from tfvae import latent  # noqa: E402  (after VAE: the linear VAE builds on it)

__version__ = "0.1.0"

__all__ = ["VAE", "AVB", "ForwardPass", "data", "export", "likelihoods", "objectives",
           "posteriors", "priors"]
