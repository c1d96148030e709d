"""The variational autoencoder, trained by a custom Keras train_step on the ELBO.

```none
ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))   <=   log p(x)
loss    = sum_t weight_t * mean_B term_t       default terms: reconstruction + beta * kl
```
The expectation uses `num_samples` reparameterized samples; the KL is analytic when TFP
has it for (posterior, prior), Monte Carlo on the same samples otherwise.

#### References
[1] Kingma & Welling (2014), Auto-Encoding Variational Bayes, arXiv:1312.6114.
[2] Higgins et al. (2017), beta-VAE, ICLR.
"""

import numpy as np

from tfvae import likelihoods as likelihoods_lib  # noqa: F401  (registers the heads)
from tfvae import networks
from tfvae import objectives as objectives_lib  # noqa: F401  (registers the terms)
from tfvae import posteriors as posteriors_lib  # noqa: F401  (registers the heads)
from tfvae import priors
from tfvae._tf import tf, tfk, tfp
from tfvae.objectives.base import check_weight
from tfvae.posteriors.base import check_latent_dim
from tfvae.seeds import stateless_seed
from tfvae.registry import ARCHITECTURES, LIKELIHOODS, MODELS, POSTERIORS, TERMS
from tfvae.types import ForwardPass, check_kl_mode

BASE_METRICS = ("loss", "elbo", "reconstruction", "kl")
OBJECTIVES = ("elbo", "iwae")


def _check_input_shape(input_shape):
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else None
    if (shape is None or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"`input_shape` must be (height, width, channels) of positive ints; "
                         f"got {input_shape!r}.")
    return shape


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    return int(value)


@MODELS.register("vae")
class VAE(tfk.Model):
    """A VAE with pluggable posterior, likelihood, networks and objective terms.

    Args:
        latent_dim: D, the number of latent dimensions. Default value: 32.
        posterior: "full_covariance" or "diagonal", a {"name": ..., **kwargs} dict, or a
            `tfvae.posteriors.Posterior` layer. Default value: "full_covariance".
        likelihood: "bernoulli" or "normal", a dict or a `Likelihood` layer.
            Default value: "bernoulli".
        input_shape: (H, W, C) of the images. Default value: (28, 28, 1).
        architecture: "mlp" or "conv" torsos. Default value: "mlp".
        hidden_units: encoder widths (mlp) or channels then dense width (conv); the decoder
            mirrors them. Default value: (512, 256) for mlp, (32, 64, 256) for conv.
        encoder, decoder: tf_keras layers to use instead of the built torsos; the encoder
            maps [B, H, W, C] to [B, F], the decoder [N, D] to [N, H, W, C * k] where k is
            the likelihood's `params_per_channel`.
        beta: weight of the KL term (beta-VAE). Default value: 1.0.
        kl: "auto" (analytic when TFP has it), "analytic" or "mc". Default value: "auto".
        num_samples: reparameterized samples per example in training. Default value: 1.
        objective: "elbo" (reconstruction + beta * kl) or "iwae" (the importance-weighted
            bound with k = `num_samples`, Burda et al.). Default value: "elbo".
        terms: the objective as a list of term names, dicts or `Term`s; replaces the
            terms that `objective` names.
        seed: seeds the model's sampling (train-step noise, `sample`). Default value: None
            (drawn from TensorFlow's global seed, so `tf.random.set_seed` makes it repeatable).
        validate_args: check values (NaN/Inf, range) inside compiled steps too, and pass
            `validate_args` to every distribution. Default value: False.
    """

    def __init__(self, latent_dim=32, posterior="full_covariance", likelihood="bernoulli",
                 input_shape=(28, 28, 1), architecture="mlp", hidden_units=None,
                 encoder=None, decoder=None, beta=1.0, kl="auto", num_samples=1,
                 objective="elbo", terms=None, seed=None, validate_args=False, name="vae",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.latent_dim = check_latent_dim(latent_dim)
        self.image_shape = _check_input_shape(input_shape)
        self.kl_mode = check_kl_mode(kl)
        self.num_samples = _check_positive_int(num_samples, "num_samples")
        self.beta = check_weight(beta, "beta")
        self.validate_args = bool(validate_args)
        arch = ARCHITECTURES.get(architecture)
        self.architecture = architecture
        self.hidden_units = networks.check_hidden_units(
            hidden_units if hidden_units is not None
            else networks.DEFAULT_HIDDEN_UNITS[architecture])
        self.posterior_spec = posterior if isinstance(posterior, (str, dict)) else None
        self.likelihood_spec = likelihood if isinstance(likelihood, (str, dict)) else None

        self.posterior = POSTERIORS.build(posterior, latent_dim=self.latent_dim,
                                          validate_args=self.validate_args)
        self.likelihood = LIKELIHOODS.build(likelihood, validate_args=self.validate_args)
        self.encoder = encoder or arch.encoder(self.image_shape, self.hidden_units)
        h, w, c = self.image_shape
        self.decoder = decoder or arch.decoder(
            self.latent_dim, (h, w, c * self.likelihood.params_per_channel), self.hidden_units)
        self.prior = priors.standard_normal(self.latent_dim, validate_args=self.validate_args)

        if objective not in OBJECTIVES:
            raise ValueError(f"`objective` must be one of {list(OBJECTIVES)}; got {objective!r}.")
        self.objective = objective
        if terms is None:
            terms = (["iwae"] if objective == "iwae"
                     else ["reconstruction", {"name": "kl", "weight": self.beta}])
        self.terms = [TERMS.build(t) for t in terms]
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"Objective term names must be unique; got {names}.")

        if seed is None:
            seed = int(tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int64))
        self.seed = int(seed)
        # Stateful generator -> a fresh stateless seed per step: repeatable from `seed`, and
        # its state is checkpointed with the model, so a resumed run draws new noise.
        self.rng = tf.random.Generator.from_seed(self.seed)

        metric_names = list(BASE_METRICS) + [n for n in names if n not in BASE_METRICS]
        metric_names += [f"{t.name}_critic_{k}" for t in self.terms if t.critic is not None
                         for k in ("loss", "accuracy_positive", "accuracy_negative")]
        self._trackers = {n: tfk.metrics.Mean(name=n) for n in metric_names}
        # Build every weight now, so weights load and `summary()` works before any training.
        self.decode(self.encode(tf.zeros((1, *self.image_shape))).mean())

    # ------------------------------------------------------------------ public API

    @property
    def has_density(self):
        return self.posterior.has_density

    def encode(self, x, training=False):
        """q(z|x): a tfd.Distribution with batch shape [B] and event shape [D].

        Args:
            x: images, [B, H, W, C], float in [0, 1].
        """
        x = self._check_x(x)
        return self.posterior(self.encoder(x, training=training), training=training)

    def decode(self, z, training=False):
        """p(x|z): a tfd.Independent with batch shape z.shape[:-1], event shape [H, W, C].

        Args:
            z: latents, [..., D] (e.g. [B, D] or [S, B, D]).
        """
        z = tf.convert_to_tensor(z, self.compute_dtype)
        if z.shape.rank is not None and (z.shape.rank < 1 or z.shape[-1] not in (None,
                                                                                self.latent_dim)):
            raise ValueError(f"`z` must have shape [..., {self.latent_dim}]; got {z.shape}.")
        batch_shape = tf.shape(z)[:-1]
        params = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        params = tf.reshape(params, tf.concat([batch_shape, tf.shape(params)[1:]], 0))
        params.set_shape(z.shape[:-1].concatenate(params.shape[-3:]) if z.shape.rank
                         else params.shape)
        return self.likelihood(params)

    def call(self, x, training=False):
        """Deterministic reconstruction: the mean of p(x | z = mean of q(z|x)), [B, H, W, C]."""
        return self.decode(self.encode(x, training=training).mean(), training=training).mean()

    def forward(self, x, num_samples=None, training=False, seed=None):
        """Runs encoder, sampler and decoder once; returns a `ForwardPass`.

        Args:
            x: images, [B, H, W, C].
            num_samples: S, samples of q(z|x) per example. Default: the model's.
            seed: an int or a stateless seed (int32 [2]); default: the model's generator.
        """
        q_z = self.encode(x, training=training)
        x = tf.convert_to_tensor(x, self.compute_dtype)
        seed = self._seed() if seed is None else stateless_seed(seed)
        z = q_z.sample(num_samples or self.num_samples, seed=seed)
        p_x_given_z = self.decode(z, training=training)
        step = self.optimizer.iterations if getattr(self, "optimizer", None) is not None \
            else tf.constant(0, tf.int64)
        return ForwardPass(x=x, q_z=q_z, z=z, p_z=self.prior, p_x_given_z=p_x_given_z,
                           step=step, kl=self.kl_mode, model=self)

    def elbo(self, x, num_samples=1, seed=None):
        """Per-example ELBO, [B] nats: mean over `num_samples` samples of log p(x|z), minus KL."""
        return self.forward(x, num_samples=_check_positive_int(num_samples, "num_samples"),
                            seed=seed).elbo

    def sample(self, n, mean=True, seed=None):
        """`n` images from the prior, [n, H, W, C]: the decoder's mean, or a draw if not `mean`."""
        n = _check_positive_int(n, "n")
        z_seed, x_seed = tfp.random.split_seed(
            self._seed() if seed is None else stateless_seed(seed), 2)
        z = self.prior.sample(n, seed=z_seed)
        p_x = self.decode(z)
        return p_x.mean() if mean else p_x.sample(seed=x_seed)

    def _seed(self):
        """A fresh stateless seed (int32 [2]) from the model's generator."""
        return self.rng.uniform_full_int([2], dtype=tf.int32)

    # ------------------------------------------------------------------ training

    def compute_losses(self, x, training=False):
        """All scalars the objective needs and `fit` reports, each a batch mean in nats.

        Returns:
            dict with "loss" (what is minimized), "elbo", "reconstruction", "kl" and one
            entry per objective term.
        """
        return self._forward_and_losses(x, training)[1]

    def _forward_and_losses(self, x, training):
        fwd = self.forward(x, training=training)
        values = {}
        loss = tf.constant(0.0, tf.float32)
        for term in self.terms:
            value = tf.reduce_mean(term(fwd))
            values[term.name] = value
            loss += term.weight_at(fwd.step) * value
        values["loss"] = loss
        if self.has_density:
            values["reconstruction"] = tf.reduce_mean(fwd.distortion)
            values["kl"] = tf.reduce_mean(fwd.rate)
            values["elbo"] = -(values["reconstruction"] + values["kl"])
        return fwd, values

    @staticmethod
    def _unpack(data):
        """Accepts x, (x,), (x, y) or (x, y, sample_weight) batches; labels are ignored."""
        return data[0] if isinstance(data, (tuple, list)) else data

    def critic_variables(self):
        """Variables owned by the terms' critics; they move only by their own optimizers."""
        return [v for t in self.terms if t.critic is not None
                for v in t.critic.trainable_variables]

    def model_variables(self):
        """Encoder, posterior, decoder and likelihood variables: the ELBO's parameters."""
        owned = {v.ref() for v in self.critic_variables()}
        return [v for v in self.trainable_variables if v.ref() not in owned]

    def train_step(self, data):
        x = self._unpack(data)
        with tf.GradientTape() as tape:
            fwd, losses = self._forward_and_losses(x, training=True)
        variables = self.model_variables()
        grads = tape.gradient(losses["loss"], variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        for term in self.terms:
            if term.critic is not None:
                for key, value in term.update_critic(fwd).items():
                    losses[f"{term.name}_critic_{key}"] = value
        return self._update_trackers(losses)

    def test_step(self, data):
        return self._update_trackers(self.compute_losses(self._unpack(data), training=False))

    def _update_trackers(self, losses):
        for name, value in losses.items():
            if name in self._trackers:
                self._trackers[name].update_state(value)
        return {name: t.result() for name, t in self._trackers.items() if name in losses}

    @property
    def metrics(self):
        # Listed here so Keras resets them every epoch (else running means across epochs).
        return list(self._trackers.values())

    def fit(self, x=None, *args, **kwargs):
        self._check_array_input(x)
        if isinstance(kwargs.get("validation_data"), np.ndarray):
            self._check_array_input(kwargs["validation_data"])
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        self._check_array_input(x)
        return super().evaluate(x, *args, **kwargs)

    # ------------------------------------------------------------------ validation

    def _check_array_input(self, x):
        """Checks in-memory arrays eagerly, before Keras wraps them in a dataset."""
        if isinstance(x, (np.ndarray, tf.Tensor)) and tf.executing_eagerly():
            self._check_x(x)

    def _check_x(self, x):
        """Static checks always; value checks eagerly (or in graphs with validate_args)."""
        if isinstance(x, (list, tuple)):
            raise TypeError(f"`x` must be one tensor of images [B, H, W, C]; got a "
                            f"{type(x).__name__}.")
        if not tf.is_tensor(x):
            x = np.asarray(x)
        dtype = tf.as_dtype(x.dtype)
        if not dtype.is_floating:
            raise TypeError(f"`x` must be float images in [0, 1]; got dtype {dtype.name} "
                            "(cast to float32 and scale by 1/255).")
        expected = (None, *self.image_shape)
        shape = tuple(x.shape)
        if len(shape) != 4 or any(e is not None and s is not None and s != e
                                  for s, e in zip(shape, expected)):
            raise ValueError(f"`x` must have shape [batch, {', '.join(map(str, self.image_shape))}]"
                             f"; got {list(shape)}.")
        x = tf.cast(x, self.compute_dtype)
        if tf.executing_eagerly() or isinstance(x, np.ndarray):
            values = x.numpy()
            if not np.all(np.isfinite(values)):
                raise ValueError("`x` contains NaN or Inf; clean the data first.")
            self.likelihood.check_values(values)
        elif self.validate_args:
            x = tf.debugging.assert_all_finite(x, "`x` contains NaN or Inf.")
        return x

    # ------------------------------------------------------------------ config

    def get_config(self):
        if self.posterior_spec is None or self.likelihood_spec is None:
            raise NotImplementedError("get_config needs posterior and likelihood given by name.")
        return {"latent_dim": self.latent_dim, "posterior": self.posterior_spec,
                "likelihood": self.likelihood_spec, "input_shape": list(self.image_shape),
                "architecture": self.architecture, "hidden_units": list(self.hidden_units),
                "beta": self.beta if not callable(self.beta) else 1.0, "kl": self.kl_mode,
                "num_samples": self.num_samples, "objective": self.objective, "terms": [t.get_config() for t in self.terms],
                "seed": self.seed, "validate_args": self.validate_args, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
