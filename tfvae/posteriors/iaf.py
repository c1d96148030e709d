"""Inverse autoregressive flow posterior (Kingma et al. 2016): a Gaussian pushed through T
encoder-conditioned autoregressive steps.

```none
z_0 ~ N(mu(x), Sigma(x))                       the "diagonal" or "full_covariance" head
c   = W h(x) + b                               context [B, H] from the encoder features
(a_t, b_t) = MADE_t(z_{t-1}; c)                a_t,i and b_t,i see only z_{t-1, <i}
z_t = (z_{t-1} - a_t) * exp(-b_t)              plain step:  sigma_t = exp(-b_t)
z_t = sigma_t z_{t-1} + (1 - sigma_t) m_t      gated step:  sigma_t = sigmoid(b_t + gate_bias),
                                                            m_t = a_t   (the paper's eq. 14)
log q(z_T|x) = log N(z_0) - sum_t sum_i log sigma_t,i      (triangular Jacobians)
```
Each step is `tfb.Invert(tfb.MaskedAutoregressiveFlow(...))` around a conditional
`tfb.AutoregressiveNetwork`; a `tfb.Permute` reversal between steps alternates the
autoregressive order, and one more reversal at the end when their number is odd, so z keeps
the base's coordinate order. Why this shape:

- Sampling runs every step forward in ONE network pass each, and gives log q of the sample
  from the base density and the forward log-determinants (`experimental_sample_and_log_prob`):
  training, the IWAE bound and the export never invert the flow. `log_prob` at an arbitrary z
  inverts it: D sequential passes per step (correct, only slow; the decomposition
  diagnostics use it once per example).
- The context enters through the network's closure, not through `bijector_kwargs`, so the
  generic `q.sample(n, seed)` of the rest of tfvae needs no conditional arguments (and
  tfb.Chain's name routing of kwargs cannot misroute); the steps still have unique names.
- The networks' output layers start at zero: a plain step starts as the exact identity, so
  the initial posterior IS the base head (which itself starts like the diagonal head, see
  gaussian_tril.py); a gated step starts as z -> sigmoid(gate_bias) z, near the identity.
- It trains with XLA (`jit_compile=True`): the sampling path has static shapes and no loops.

Moments (`mean`, `stddev`, ...) have no closed form: they are Monte-Carlo estimates over
`MOMENT_SAMPLES` fixed noise draws, deterministic per x (as the implicit posterior's).

#### References
[1] Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling (2016), Improving Variational
    Inference with Inverse Autoregressive Flow, arXiv:1606.04934, Sec. 4 and eq. 10-14.
[2] Germain et al. (2015), MADE: Masked Autoencoder for Distribution Estimation.
"""

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfb, tfd, tfk
from tfvae.posteriors.base import Posterior
from tfvae.registry import POSTERIORS

BASES = ("diagonal", "full_covariance")
#: fixed noise draws behind the Monte-Carlo moments (error ~ sd / 8)
MOMENT_SAMPLES = 64


class IAFDistribution(tfd.Distribution):
    """q(z|x) = flow(base): batch [B], event [D], fully reparameterized.

    Args:
        base: the Gaussian q_0(z|x), batch [B], event [D].
        flow: the bijector z_0 -> z_T (conditioning already bound in).
    """

    def __init__(self, base, flow, validate_args=False, allow_nan_stats=True, name="q_z"):
        parameters = dict(locals())
        self._base = base
        self._flow = flow
        super().__init__(dtype=base.dtype, reparameterization_type=tfd.FULLY_REPARAMETERIZED,
                         validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                         parameters=parameters, name=name)

    @property
    def base(self):
        return self._base

    @property
    def flow(self):
        return self._flow

    def _batch_shape(self):
        return self._base.batch_shape

    def _batch_shape_tensor(self):
        return self._base.batch_shape_tensor()

    def _event_shape(self):
        return self._base.event_shape

    def _event_shape_tensor(self):
        return self._base.event_shape_tensor()

    def _sample_n(self, n, seed=None):
        return self._flow.forward(self._base.sample(n, seed=seed))

    def _sample_and_log_prob(self, sample_shape, seed, **kwargs):
        """(z, log q(z|x)) in one forward pass: log q_0(z_0) - log|det dz/dz_0|."""
        z0, base_log_prob = self._base.experimental_sample_and_log_prob(sample_shape, seed=seed)
        z = self._flow.forward(z0)
        return z, base_log_prob - self._flow.forward_log_det_jacobian(z0, event_ndims=1)

    def _log_prob(self, z):
        """At an arbitrary z: inverts the flow (D sequential network passes per step)."""
        z0 = self._flow.inverse(z)
        return self._base.log_prob(z0) + self._flow.inverse_log_det_jacobian(z, event_ndims=1)

    def _moment_samples(self):
        d = int(self.event_shape[-1])
        eps = np.random.default_rng(0).normal(size=(MOMENT_SAMPLES, 1, d))
        return self._flow.forward(self._base.bijector.forward(tf.constant(eps, self.dtype)))

    def _mean(self):
        return tf.reduce_mean(self._moment_samples(), 0)

    def _variance(self):
        z = self._moment_samples()
        return tf.math.reduce_variance(z, 0) * MOMENT_SAMPLES / (MOMENT_SAMPLES - 1)

    def _stddev(self):
        return tf.sqrt(self._variance())

    def _covariance(self):
        z = self._moment_samples()
        zc = z - tf.reduce_mean(z, 0)
        return tf.einsum("mbi,mbj->bij", zc, zc) / (MOMENT_SAMPLES - 1)


def _shift_and_log_scale(network, context, gated, gate_bias):
    """MAF's (shift, log_scale) of one step, with the context bound in; Invert(MAF) maps
    z -> (z - shift) * exp(-log_scale)."""

    def fn(z):
        shape = tf.concat([tf.shape(z)[:-1], tf.shape(context)[-1:]], 0)
        a, b = tf.unstack(network(z, conditional_input=tf.broadcast_to(context, shape)), axis=-1)
        if not gated:
            return a, b
        s = b + gate_bias  # sigma = sigmoid(s): (z + e^-s m) sigma = sigma z + (1 - sigma) m
        return -tf.exp(-s) * a, tf.nn.softplus(-s)

    return fn


@POSTERIORS.register("iaf")
class IAF(Posterior):
    """q(z|x): a diagonal or full-covariance Gaussian followed by `num_steps` inverse
    autoregressive flow steps conditioned on the encoder (see the module docstring).

    Args:
        latent_dim: D (at least 2: one dimension has no autoregressive structure to use).
        num_steps: T, the number of IAF steps. Default value: 2.
        hidden_units: widths of each step's MADE network (ELU). Default value: (256, 256).
        context_dim: H, width of the context c = Dense(h) every step is conditioned on.
            Default value: 64.
        base: the Gaussian head before the flow: "diagonal" or "full_covariance".
            Default value: "diagonal" (the paper's).
        gated: use the paper's gated update sigma z + (1 - sigma) m (numerically stabler:
            0 < sigma < 1). Default value: False.
        gate_bias: added to the gate's pre-activation, so a fresh gated step is
            z -> sigmoid(gate_bias) z. Default value: 3.0 (sigma = 0.95).
        init_scale: every sigma of the base at initialization. Default value: 1.0.
    """

    def __init__(self, latent_dim, num_steps=2, hidden_units=(256, 256), context_dim=64,
                 base="diagonal", gated=False, gate_bias=3.0, init_scale=1.0,
                 validate_args=False, **kwargs):
        super().__init__(latent_dim, validate_args=validate_args, **kwargs)
        if self.latent_dim < 2:
            raise ValueError("The 'iaf' posterior needs latent_dim >= 2 (its reversing "
                             f"permutations and autoregressive steps need 2+ dims); got "
                             f"{latent_dim}.")
        self.num_steps = validation.positive_int(num_steps, "num_steps")
        self.hidden_units = validation.positive_ints(hidden_units, "hidden_units")
        self.context_dim = validation.positive_int(context_dim, "context_dim")
        self.base = validation.choice(base, "base", BASES)
        self.gated = validation.boolean(gated, "gated")
        self.gate_bias = validation.real(gate_bias, "gate_bias")
        self.init_scale = validation.real(init_scale, "init_scale", minimum=0.0, strict=True)
        self.base_layer = POSTERIORS.get(self.base)(latent_dim, init_scale=self.init_scale,
                                                    validate_args=validate_args, name="base")
        self.context_layer = tfk.layers.Dense(self.context_dim, name="context")
        self.networks = [
            tfb.AutoregressiveNetwork(params=2, event_shape=[latent_dim], conditional=True,
                                      conditional_event_shape=[self.context_dim],
                                      hidden_units=list(self.hidden_units), activation="elu",
                                      name=f"made_{t}")
            for t in range(self.num_steps)]
        self._reverse = list(range(latent_dim))[::-1]

    def build(self, input_shape):
        d = self.latent_dim
        for network in self.networks:
            network(tf.zeros([1, d]), conditional_input=tf.zeros([1, self.context_dim]))
            # Zero the output layer (its autoregressive and its context part): every step
            # starts at shift 0, log_scale 0 (the identity; the gate's bias for gated).
            output = network._network.layers[-1]  # pylint: disable=protected-access
            for layer in output._inbound_nodes[0].inbound_layers:  # pylint: disable=protected-access
                for weight in layer.weights:
                    weight.assign(tf.zeros_like(weight))
        super().build(input_shape)

    def flow(self, context):
        """The bijector z_0 -> z_T for a context [B, H] (a tfb.Chain, unique step names)."""
        steps = []
        for t, network in enumerate(self.networks):
            if t:
                steps.append(tfb.Permute(self._reverse, name=f"reverse_{t}"))
            steps.append(tfb.Invert(tfb.MaskedAutoregressiveFlow(
                shift_and_log_scale_fn=_shift_and_log_scale(network, context, self.gated,
                                                            self.gate_bias),
                name=f"maf_{t}"), name=f"iaf_{t}"))
        if (self.num_steps - 1) % 2:  # an odd number of reversals: restore the base's order
            steps.append(tfb.Permute(self._reverse, name="reverse_out"))
        return tfb.Chain(steps[::-1], name="iaf_flow")  # Chain applies its list last-first

    def call(self, h):
        return IAFDistribution(self.base_layer(h), self.flow(self.context_layer(h)),
                               validate_args=self.validate_args)

    def export_tensors(self, q_z, seed):
        """z and log q(z|x) from one forward pass (the export never inverts the flow)."""
        z, log_q = q_z.experimental_sample_and_log_prob(seed=seed)
        return {"z": z, "log_q": log_q}

    def proposal(self, q_z):
        return q_z
