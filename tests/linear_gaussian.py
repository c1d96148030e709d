"""A linear-Gaussian VAE whose log p(x) and posterior are known in closed form.

```none
z ~ N(0, I_d),  x | z ~ N(W z + b, s^2 I)   =>   x ~ N(b, W W^T + s^2 I)
p(z|x) = N(S W^T (x - b) / s^2, S),         S = (I + W^T W / s^2)^-1
```
"""

import numpy as np

import tfvae
from tfvae._tf import tf, tfd, tfk
from tfvae.posteriors.base import Posterior

IMAGE = (4, 4, 1)
PIXELS = 16
LATENT = 3
SIGMA = 0.5


def make_params(seed=0):
    r = np.random.default_rng(seed)
    return (r.normal(scale=0.8, size=(PIXELS, LATENT)).astype(np.float32),
            r.uniform(0.2, 0.8, size=PIXELS).astype(np.float32))


class ExactPosterior(Posterior):
    """The true p(z|x) of the linear-Gaussian model, from flattened x.

    With `mean_field=True` it is a realistic approximation instead: the true marginal
    variances without the correlations, widened by `widen`, and the mean moved by `shift`
    (so the proposal is good but not exact, with weights of bounded variance).
    """

    def __init__(self, w, b, sigma=SIGMA, mean_field=False, widen=1.3, shift=0.5, **kwargs):
        super().__init__(w.shape[1], **kwargs)
        w64 = w.astype(np.float64)
        cov = np.linalg.inv(np.eye(w.shape[1]) + w64.T @ w64 / sigma**2)
        self.gain = tf.constant((cov @ w64.T / sigma**2).T, tf.float32)  # [P, d]
        self.b = tf.constant(b)
        # The shift is in posterior standard deviations (those are ~0.16 here).
        self.offset = tf.constant(shift * np.sqrt(np.diag(cov)) if mean_field else 0.0,
                                  tf.float32)
        chol = np.diag(widen * np.sqrt(np.diag(cov))) if mean_field else np.linalg.cholesky(cov)
        self.chol = tf.constant(chol, tf.float32)

    @staticmethod
    def params_size(latent_dim):
        return 0

    def call(self, h):
        loc = tf.matmul(h - self.b, self.gain) + self.offset
        return tfd.MultivariateNormalTriL(loc, tf.broadcast_to(self.chol, [tf.shape(h)[0],
                                                                            *self.chol.shape]))


def linear_decoder(w, b):
    dense = tfk.layers.Dense(PIXELS, input_shape=(LATENT,))
    decoder = tfk.Sequential([dense, tfk.layers.Reshape(IMAGE)])
    dense.set_weights([w.T, b])
    return decoder


def make_model(w, b, posterior="exact", kl="auto", posterior_kwargs=None, **kwargs):
    if posterior in ("exact", "mean_field"):
        posterior = ExactPosterior(w, b, mean_field=posterior == "mean_field",
                                   **(posterior_kwargs or {}))
        encoder = tfk.Sequential([tfk.layers.Flatten(input_shape=IMAGE)])
    else:
        encoder = None
    model = tfvae.VAE(latent_dim=LATENT, posterior=posterior,
                      likelihood={"name": "normal", "sigma": SIGMA}, input_shape=IMAGE,
                      hidden_units=(32,), encoder=encoder, decoder=linear_decoder(w, b),
                      kl=kl, seed=7, **kwargs)
    return model


def exact_log_px(w, b, x):
    """log p(x) per example, [B] nats, in float64."""
    cov = w.astype(np.float64) @ w.T.astype(np.float64) + SIGMA**2 * np.eye(PIXELS)
    d = x.reshape(len(x), -1).astype(np.float64) - b
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("bi,ij,bj->b", d, np.linalg.inv(cov), d)
    return -0.5 * (maha + logdet + PIXELS * np.log(2 * np.pi))


def sample_x(w, b, n, seed=1):
    r = np.random.default_rng(seed)
    z = r.normal(size=(n, LATENT))
    x = z @ w.T + b + SIGMA * r.normal(size=(n, PIXELS))
    return x.reshape(n, *IMAGE).astype(np.float32)
