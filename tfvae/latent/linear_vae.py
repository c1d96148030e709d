"""The linear VAE, whose ELBO optimum is the pPCA maximum-likelihood solution.

```none
q(z | x) = N(V (x - c), S)       S constant: diagonal (Lucas et al.) or full, V and c linear
p(z)     = N(0, I_K),   p(x | z) = N(W z + b, s2 I_D),   one learned scalar s2
ELBO(x)  = log N(x; W m + b, s2 I) - tr(W S W^T) / (2 s2) - KL(q || p(z)),    m = V (x - c)
```
Every term is a closed form, so `analytic_elbo` needs no sampling. Lucas et al. (2019) show
that the ELBO's global optimum is the pPCA MLE (W spans the top-K eigenvectors of the data
covariance, s2 is the mean of the others) and that the ELBO is tight there, even with a
diagonal S: the optimal W has orthogonal columns, so the true posterior is diagonal too.

Posterior collapse: hold s2 fixed. The maximizer of log p(x) in W is then
W = U_K diag(sqrt(max(l_i - s2, 0))), so every direction whose eigenvalue l_i is at most s2 gets
a zero column: its latent carries no information and q matches the prior there (KL = 0).
That is a property of the likelihood, not of the ELBO (`posterior_collapse` shows it).

#### References
[1] Lucas, Tucker, Grosse & Norouzi (2019), Don't Blame the ELBO! A Linear VAE Perspective on
    Posterior Collapse, NeurIPS, arXiv:1911.02469.
[2] Tipping & Bishop (1999), Probabilistic Principal Component Analysis.
"""

import math

import numpy as np

from tfvae._tf import tf, tfd, tfk
from tfvae.latent import _checks
from tfvae.latent.ppca import PPCA
from tfvae.likelihoods.base import Likelihood
from tfvae.models.vae import VAE
from tfvae.posteriors.base import Posterior
from tfvae.registry import LIKELIHOODS


@LIKELIHOODS.register("normal_scalar")
class ScalarNormalLikelihood(Likelihood):
    """p(x|z) = prod_pixels Normal(loc, sqrt(s2)), with ONE variance s2 shared by all pixels.

    Args:
        variance: s2, or its initial value when learned. Default value: 1.0.
        learn_variance: learn s2 (as log s2) or hold it fixed. Default value: True.
    """

    def __init__(self, variance=1.0, learn_variance=True, validate_args=False, **kwargs):
        super().__init__(validate_args=validate_args, **kwargs)
        # The constructor's argument under its own name (components.spec_of reads it back);
        # the learned value is `learned_variance`.
        self.variance = self.initial_variance = _checks.check_positive_float(variance,
                                                                             "variance")
        self.learn_variance = bool(learn_variance)

    def build(self, input_shape):
        self.log_variance = self.add_weight(
            name="log_variance", shape=(), trainable=self.learn_variance,
            initializer=tfk.initializers.Constant(math.log(self.initial_variance)))
        super().build(input_shape)

    @property
    def learned_variance(self):
        """s2 now (learned or fixed), a scalar tensor."""
        return tf.exp(self.log_variance)

    def call(self, params):
        scale = tf.exp(0.5 * tf.cast(self.log_variance, params.dtype))
        return tfd.Independent(tfd.Normal(params, scale, validate_args=self.validate_args),
                               reinterpreted_batch_ndims=3, name="p_x_given_z")

    def get_config(self):
        return {**super().get_config(), "variance": self.initial_variance,
                "learn_variance": self.learn_variance}


class LinearGaussianPosterior(Posterior):
    """q(z|x) = N(Dense(h), S) with S = L L^T the same for every x (diagonal L by default).

    Args:
        latent_dim: K.
        full_covariance: learn the strictly-lower part of L too. Default value: False.
    """

    def __init__(self, latent_dim, full_covariance=False, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.full_covariance = bool(full_covariance)
        self.loc_layer = tfk.layers.Dense(latent_dim, name="loc")

    def build(self, input_shape):
        k = self.latent_dim
        self.log_scale = self.add_weight(name="log_scale", shape=(k,), initializer="zeros")
        if self.full_covariance:
            self.offdiag = self.add_weight(name="offdiag", shape=(k, k), initializer="zeros")
        super().build(input_shape)

    @staticmethod
    def params_size(latent_dim):
        return 0

    def scale_tril(self):
        """L, [K, K]."""
        diag = tf.linalg.diag(tf.exp(self.log_scale))
        if not self.full_covariance:
            return diag
        return diag + tf.linalg.band_part(self.offdiag, -1, 0) - tf.linalg.band_part(
            self.offdiag, 0, 0)

    def call(self, h):
        loc = self.loc_layer(h)
        if not self.full_covariance:
            return tfd.MultivariateNormalDiag(loc, tf.broadcast_to(tf.exp(self.log_scale),
                                                                   tf.shape(loc)), name="q_z")
        tril = tf.broadcast_to(self.scale_tril(), tf.concat([tf.shape(loc), [self.latent_dim]], 0))
        return tfd.MultivariateNormalTriL(loc, tril, name="q_z")


def build_linear_vae(data_shape, latent_dim, variance=1.0, learn_variance=True,
               full_covariance=False, num_samples=1, seed=0):
    """A `tfvae.VAE` with linear encoder and decoder and the `normal_scalar` likelihood.

    Args:
        data_shape: (H, W, C) of one example; vectors of length D are (D, 1, 1).
        latent_dim: K.
        variance: s2 (its initial value if `learn_variance`). Default value: 1.0.
        learn_variance: learn s2, or hold it fixed (the collapse setting). Default value: True.
        full_covariance: a full constant S instead of a diagonal one. Default value: False.
        num_samples: reparameterized samples per example in training. Default value: 1.
    """
    shape = tuple(int(s) for s in data_shape)
    dim = int(np.prod(shape))
    dense = tfk.layers.Dense(dim, name="linear_decoder")
    decoder = tfk.Sequential([tfk.Input((latent_dim,)), dense, tfk.layers.Reshape(shape)])
    encoder = tfk.Sequential([tfk.Input(shape), tfk.layers.Flatten()])
    return VAE(latent_dim=latent_dim, input_shape=shape, encoder=encoder, decoder=decoder,
               posterior=LinearGaussianPosterior(latent_dim, full_covariance=full_covariance),
               likelihood={"name": "normal_scalar", "variance": variance,
                           "learn_variance": learn_variance},
               num_samples=num_samples, seed=seed, name="linear_vae")


def train_linear_vae(model, x, steps=2000, learning_rate=0.03, batch_size=None):
    """Adam on the ELBO (the model's own `train_step`), the rate decaying linearly to 0.1%.

    A rate that decays to ~0 averages away the Monte-Carlo noise of the reparameterized
    gradient, which is what lets the fit reach the optimum to 1e-2. Returns the model.
    """
    x = np.asarray(x, np.float32)
    batch_size = len(x) if batch_size is None else min(int(batch_size), len(x))
    schedule = tfk.optimizers.schedules.PolynomialDecay(learning_rate, steps,
                                                        end_learning_rate=1e-3 * learning_rate)
    model.compile(optimizer=tfk.optimizers.Adam(schedule), steps_per_execution=100)
    data = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=0).repeat().batch(
        batch_size, drop_remainder=True)
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return model


def decoder_parameters(model):
    """(W [D, K], b [D], s2) of a model built by `build_linear_vae`, float64."""
    dense = model.decoder.get_layer("linear_decoder")
    return (dense.kernel.numpy().T.astype(np.float64), dense.bias.numpy().astype(np.float64),
            float(model.likelihood.learned_variance.numpy()))


def analytic_elbo(model, x):
    """Per-example ELBO of a linear VAE in closed form, [N] float64 nats (exact, no sampling)."""
    x = np.asarray(x, np.float32)
    q = model.encode(x)
    m = q.mean().numpy().astype(np.float64)
    cov = q.covariance().numpy().astype(np.float64)[0]  # the same S for every example
    w, b, s2 = decoder_parameters(model)
    flat = x.reshape(len(x), -1).astype(np.float64)
    d, k = w.shape
    resid = flat - m @ w.T - b
    expected_log_lik = (-0.5 * d * math.log(2 * math.pi * s2)
                        - (np.sum(resid**2, 1) + np.trace(w @ cov @ w.T)) / (2 * s2))
    _, log_det = np.linalg.slogdet(cov)
    kl = 0.5 * (np.trace(cov) + np.sum(m**2, 1) - k - log_det)
    return expected_log_lik - kl


def subspace_distance(a, b):
    """sin of the largest principal angle between the column spaces of a and b [D, K]
    (0: same subspace, 1: some direction of one is orthogonal to the other)."""
    qa, _ = np.linalg.qr(a)
    qb, _ = np.linalg.qr(b)
    cosines = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(math.sqrt(max(0.0, 1.0 - float(np.min(cosines)) ** 2)))


def compare_with_ppca(model, x, ppca=None):
    """How far a trained linear VAE is from the pPCA MLE on the same data.

    Returns a dict; every value is exact (closed forms on the fitted parameters):
        subspace_distance: between the decoder's W and the MLE's W.
        noise_variance, noise_variance_mle, noise_variance_relative_error.
        elbo: mean analytic ELBO, nats per example.
        log_px: mean log p(x) under the VAE's own generative model (x ~ N(b, WW^T + s2 I)).
        log_px_mle: mean log p(x) under the pPCA MLE (the best any linear VAE can do).
        elbo_gap: log_px - elbo (>= 0; 0 when q is the true posterior).
    """
    ppca = ppca if ppca is not None else PPCA(model.latent_dim).fit(x)
    w, b, s2 = decoder_parameters(model)
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    cov = w @ w.T + s2 * np.eye(len(b))
    log_px = tfd.MultivariateNormalTriL(b, np.linalg.cholesky(cov)).log_prob(flat).numpy()
    elbo = analytic_elbo(model, x)
    return {
        "subspace_distance": subspace_distance(w, ppca.weights),
        "noise_variance": s2, "noise_variance_mle": ppca.noise_variance,
        "noise_variance_relative_error": abs(s2 - ppca.noise_variance) / ppca.noise_variance,
        "elbo": float(elbo.mean()), "log_px": float(log_px.mean()),
        "log_px_mle": float(ppca.log_prob(flat).mean()),
        "elbo_gap": float((log_px - elbo).mean()),
    }


def posterior_collapse(x, latent_dim, variance, steps=2000, learning_rate=0.03, seed=0):
    """Trains a linear VAE with s2 held at `variance` and reports which latents collapse.

    Returns a dict (arrays in decreasing order; all exact closed forms on the fit):
        eigenvalues: the top K eigenvalues l_i of the data covariance.
        singular_values: of the trained decoder W.
        expected_singular_values: sqrt(max(l_i - s2, 0)), the fixed-s2 MLE's.
        kl_per_dim: mean KL(q(z_i|x) || N(0, 1)) per latent, nats (sorted decreasing).
        collapsed: how many latents have KL < 0.01 nats.
    """
    x = np.asarray(x, np.float32)
    data_shape = x.shape[1:] if x.ndim > 2 else (x.shape[1], 1, 1)
    model = build_linear_vae(data_shape, latent_dim, variance=variance, learn_variance=False,
                       seed=seed)
    train_linear_vae(model, x.reshape(len(x), *data_shape), steps=steps,
                     learning_rate=learning_rate)
    flat = x.reshape(len(x), -1).astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(np.cov(flat.T, bias=True)))[::-1][:latent_dim]
    q = model.encode(x.reshape(len(x), *data_shape))
    m, var = q.mean().numpy().astype(np.float64), q.variance().numpy().astype(np.float64)
    kl = np.sort((0.5 * (var + m**2 - 1 - np.log(var))).mean(0))[::-1]
    w, _, _ = decoder_parameters(model)
    return {"eigenvalues": eig, "variance": float(variance),
            "singular_values": np.linalg.svd(w, compute_uv=False),
            "expected_singular_values": np.sqrt(np.maximum(eig - variance, 0.0)),
            "kl_per_dim": kl, "collapsed": int(np.sum(kl < 0.01))}
