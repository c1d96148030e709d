"""The variational autoencoder, trained by one custom Keras train_step for every model.

```none
ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))   <=   log p(x)
loss    = sum_t weight_t * mean_B term_t       default terms: reconstruction + beta * kl
```
The expectation uses `num_samples` reparameterized samples; the KL is analytic when TFP
has it for (posterior, prior), Monte Carlo on the same samples otherwise.

A model family is a recipe: a subclass whose constructor turns a few hyperparameters into
a list of terms (and defaults for the components). Terms that own a critic are updated
by this class's `train_step` in the order they declare (see `tfvae.objectives.base`),
so no model copies the step.

#### References
[1] Kingma & Welling (2014), Auto-Encoding Variational Bayes, arXiv:1312.6114.
[2] Higgins et al. (2017), beta-VAE, ICLR.
"""

from tfvae import components
from tfvae import likelihoods as likelihoods_lib  # noqa: F401  (registers the heads)
from tfvae import networks
from tfvae import objectives as objectives_lib  # noqa: F401  (registers the terms)
from tfvae import posteriors as posteriors_lib  # noqa: F401  (registers the heads)
from tfvae import priors  # noqa: F401  (registers the priors)
from tfvae import validation
from tfvae._tf import tf, tfk, tfp
from tfvae.models import _guarded, _inputs
from tfvae.models.train_step import TrainStep
from tfvae.objectives.base import check_weight
from tfvae.registry import ARCHITECTURES, LIKELIHOODS, MODELS, POSTERIORS, PRIORS, TERMS
from tfvae.seeds import stateless_seed
from tfvae.types import ForwardPass, check_kl_mode

OBJECTIVES = ("elbo", "iwae")
#: arguments of a component spec that the model supplies itself
MODEL_CONTEXT = ("latent_dim", "dataset_size")


@MODELS.register("vae")
class VAE(TrainStep, tfk.Model):
    """A VAE with pluggable posterior, likelihood, prior, networks and objective terms.

    Args:
        latent_dim: D, the number of latent dimensions. Default value: 32.
        posterior: a registered posterior name (`tfvae.registry.POSTERIORS`), a
            {"name": ..., **arguments} spec, or a `tfvae.posteriors.Posterior` layer.
            Default value: "full_covariance".
        likelihood: a registered likelihood name, a spec or a `Likelihood` layer.
            Default value: "bernoulli".
        prior: a registered prior name, a spec or a `Prior` layer.
            Default value: "standard_normal".
        input_shape: (H, W, C) of the images. Default value: (28, 28, 1).
        architecture: "mlp" or "conv" torsos. Default value: "mlp".
        hidden_units: encoder widths (mlp) or channels then dense width (conv); the decoder
            mirrors them. Default value: (512, 256) for mlp, (32, 64, 256) for conv.
        encoder, decoder: tf_keras layers to use instead of the built torsos; the encoder
            maps [B, H, W, C] to [B, F], the decoder [N, D] to [N, H, W, C * k] where k is
            the likelihood's `params_per_channel`.
        beta: weight of the KL term of the default objective (beta-VAE). Default value: 1.0.
        kl: "auto" (analytic when TFP has it), "analytic" or "mc". Default value: "auto".
        num_samples: reparameterized samples per example in training. Default value: 1.
        objective: "elbo" (reconstruction + beta * kl) or "iwae" (the importance-weighted
            bound with k = `num_samples`, Burda et al.). Default value: "elbo".
        terms: the objective as a list of term names, specs or `Term`s; replaces the
            terms that `objective` names.
        dataset_size: N, the number of training examples, for terms that estimate the
            aggregate posterior (mi, tc, dim_kl). Default value: None.
        seed: seeds the model's sampling (train-step noise, `sample`). Default value: None
            (drawn from TensorFlow's global seed, so `tf.random.set_seed` makes it repeatable).
        validate_args: check values (NaN/Inf, range) inside compiled steps too, and pass
            `validate_args` to every distribution. Default value: False.
    """

    def __init__(self, latent_dim=32, posterior="full_covariance", likelihood="bernoulli",
                 prior="standard_normal", input_shape=(28, 28, 1), architecture="mlp",
                 hidden_units=None, encoder=None, decoder=None, beta=1.0, kl="auto",
                 num_samples=1, objective="elbo", terms=None, dataset_size=None, seed=None,
                 validate_args=False, name=None, **kwargs):
        unknown = sorted(set(kwargs) - {"dtype", "trainable", "dynamic"})
        if unknown:
            raise TypeError(f"Model {getattr(self, 'registry_name', 'vae')!r} takes no argument "
                            f"{unknown[0]!r}; its arguments are "
                            f"{sorted(components.parameters(type(self)))} (component "
                            "arguments go in the posterior, likelihood, prior or term spec).")
        super().__init__(name=name or getattr(self, "registry_name", "vae"), **kwargs)
        given = {"beta": beta, "kl": kl, "objective": objective, "num_samples": num_samples}
        for key, default in (("beta", 1.0), ("kl", "auto"), ("objective", "elbo"),
                             ("num_samples", 1)):
            if key in self.derived and given[key] != default:
                raise ValueError(f"`{key}` does not apply to model {self.registry_name!r}, "
                                 f"which sets it itself; got {given[key]!r}.")
        self.latent_dim = validation.positive_int(latent_dim, "latent_dim")
        self.image_shape = validation.image_shape(input_shape)
        self.kl = check_kl_mode(kl)
        self.num_samples = validation.positive_int(num_samples, "num_samples")
        self.beta = check_weight(beta, "beta")
        self.objective = validation.choice(objective, "objective", OBJECTIVES)
        self.dataset_size = dataset_size
        self.validate_args = validation.boolean(validate_args, "validate_args")
        arch = ARCHITECTURES.get(architecture)
        self.architecture = architecture
        self.hidden_units = validation.positive_ints(
            hidden_units if hidden_units is not None
            else networks.DEFAULT_HIDDEN_UNITS[architecture], "hidden_units")
        self.custom_networks = encoder is not None or decoder is not None
        context = {"latent_dim": self.latent_dim, "validate_args": self.validate_args,
                   "dataset_size": dataset_size}
        self.posterior = POSTERIORS.build(posterior, context)
        self.likelihood = LIKELIHOODS.build(likelihood, context)
        self.prior_layer = PRIORS.build(prior, context)
        self.prior = self.prior_layer.distribution()
        self.encoder = encoder or arch.encoder(self.image_shape, self.hidden_units)
        h, w, c = self.image_shape
        self.decoder = decoder or arch.decoder(
            self.latent_dim, (h, w, c * self.likelihood.params_per_channel), self.hidden_units)
        if terms is None:
            terms = (["iwae"] if objective == "iwae"
                     else ["reconstruction", {"name": "kl", "weight": self.beta}])
        elif objective != "elbo":
            raise ValueError(f"`objective={objective!r}` names terms of its own; pass either "
                             "`terms` or `objective`, not both.")
        self.terms = [TERMS.build(t, context) for t in terms]
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names):
            raise ValueError(f"Objective term names must be unique; got {names}.")
        if seed is None:
            seed = int(tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int64))
        self.seed = validation.integer(seed, "seed", minimum=0)
        # Stateful generator -> a fresh stateless seed per step: repeatable from `seed`, and
        # its state is checkpointed with the model, so a resumed run draws new noise.
        self.rng = tf.random.Generator.from_seed(self.seed)
        self._trackers = {n: tfk.metrics.Mean(name=n) for n in self.metric_names()}
        self.step_guard = _guarded.StepGuard(self.metric_names())  # steps skipped (NaN/Inf)
        # Build every weight now, so weights load and `summary()` works before any training.
        self.decode(self.encode(tf.zeros((1, *self.image_shape))).sample(seed=[0, 0]))
        for term in self.terms:
            term.build_critic(self.image_shape, self.latent_dim)

    # ------------------------------------------------------------------ public API

    @property
    def has_density(self):
        return self.posterior.has_density

    def encode(self, x, training=False):
        """q(z|x): a tfd.Distribution with batch shape [B] and event shape [D].

        Args:
            x: images, [B, H, W, C], float in [0, 1].
        """
        x = _inputs.check_images(self, x)
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
        if tf.executing_eagerly() and not bool(tf.reduce_all(tf.math.is_finite(z))):
            raise ValueError("`z` contains NaN or Inf; decode finite latents.")
        batch_shape = tf.shape(z)[:-1]
        params = self.decoder(tf.reshape(z, [-1, self.latent_dim]), training=training)
        params = tf.reshape(params, tf.concat([batch_shape, tf.shape(params)[1:]], 0))
        params.set_shape(z.shape[:-1].concatenate(params.shape[-3:]) if z.shape.rank
                         else params.shape)
        return self.likelihood(params)

    def call(self, x, training=False):
        """Deterministic reconstruction: the mean of p(x | z = mean of q(z|x)), [B, H, W, C]."""
        return self.decode(self.encode(x, training=training).mean(), training=training).mean()

    def forward(self, x, num_samples=None, training=False, seed=None, decode=True):
        """Runs encoder, sampler and (unless not `decode`) decoder once: a `ForwardPass`.

        Args:
            x: images, [B, H, W, C].
            num_samples: S, samples of q(z|x) per example. Default: the model's.
            seed: an int or a stateless seed (int32 [2]); default: the model's generator.
        """
        q_z = self.encode(x, training=training)
        x = tf.convert_to_tensor(x, self.compute_dtype)
        seed = self.next_seed() if seed is None else stateless_seed(seed)
        sample_seed, pass_seed = tfp.random.split_seed(seed, 2)
        num_samples = num_samples or self.num_samples
        if self.has_density:  # z with its log q in one pass: a flow's needs no inverse
            z, log_qz = q_z.experimental_sample_and_log_prob(num_samples, seed=sample_seed)
        else:
            z, log_qz = q_z.sample(num_samples, seed=sample_seed), None
        p_x_given_z = self.decode(z, training=training) if decode else None
        step = self.optimizer.iterations if getattr(self, "optimizer", None) is not None \
            else tf.constant(0, tf.int64)
        return ForwardPass(x=x, q_z=q_z, z=z, p_z=self.prior, p_x_given_z=p_x_given_z,
                           step=step, seed=pass_seed, kl=self.kl, log_qz=log_qz,
                           training=training)

    def elbo(self, x, num_samples=1, seed=None):
        """Per-example ELBO, [B] nats: mean over `num_samples` samples of log p(x|z), minus
        the KL. For a posterior without a density it is the *estimate* made with the term
        that estimates the rate (AVB's critic), not a bound; it raises if there is none."""
        fwd = self.forward(x, num_samples=validation.positive_int(num_samples, "num_samples"),
                           seed=seed)
        return -(fwd.distortion + self._rate(fwd))

    def sample(self, n, mean=True, seed=None):
        """`n` images from the prior, [n, H, W, C]: the decoder's mean, or a draw if not `mean`."""
        n = validation.positive_int(n, "n")
        z_seed, x_seed = tfp.random.split_seed(
            self.next_seed() if seed is None else stateless_seed(seed), 2)
        p_x = self.decode(self.prior.sample(n, seed=z_seed))
        return p_x.mean() if mean else p_x.sample(seed=x_seed)

    def proposal(self, x):
        """The importance distribution r(z|x) for `tfvae.evaluation.log_likelihood`."""
        r = self.posterior.proposal(self.encode(x))
        if r is None:
            raise ValueError(f"The {self.posterior.registry_name!r} posterior offers no "
                             "importance distribution, so log p(x) is not estimated for it.")
        return r

    def next_seed(self):
        """A fresh stateless seed (int32 [2]) from the model's generator."""
        return self.rng.uniform_full_int([2], dtype=tf.int32)

    _seed = next_seed

    def check_inputs(self, x):
        """`x` as float images of this model's shape, or a one-line TypeError/ValueError."""
        return _inputs.check_images(self, x)

    def _rate(self, fwd):
        if self.has_density:
            return fwd.rate
        for term in self.terms:
            if term.estimates_rate:
                return term(fwd)
        raise ValueError(f"The {self.posterior.registry_name!r} posterior has no density, so "
                         "KL(q(z|x) || p(z)) and the ELBO are undefined (+inf for a point "
                         "mass); no objective term estimates them.")

    # ------------------------------------------------------------------ config

    #: constructor arguments a recipe derives itself (left out of its config)
    derived = ()

    def get_config(self):
        """The constructor arguments, with every component as its full spec: `from_config`
        (and `tfvae.models.build`) rebuild an equal, untrained model from it."""
        if self.custom_networks:
            raise NotImplementedError("get_config needs the built-in encoder and decoder.")
        config = {}
        for key in components.parameters(type(self), exclude=("encoder", "decoder")):
            if key in self.derived:
                continue
            if key in ("posterior", "likelihood", "prior"):
                layer = self.prior_layer if key == "prior" else getattr(self, key)
                if not hasattr(layer, "registry_name"):
                    raise NotImplementedError(f"get_config needs a registered {key}.")
                config[key] = components.spec_of(layer, exclude=MODEL_CONTEXT)
            elif key == "terms":
                config[key] = [components.spec_of(t, exclude=MODEL_CONTEXT) for t in self.terms]
            elif key == "input_shape":
                config[key] = list(self.image_shape)
            elif hasattr(self, key):
                config[key] = components.to_spec(getattr(self, key))
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**{k: components.from_spec_value(v) for k, v in config.items()})
