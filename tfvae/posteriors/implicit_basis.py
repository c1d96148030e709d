"""Implicit posterior with a noise basis: z = z0(x) + sum_i a_i(x) * v_i(eps_i) (AVB's encoder).

```none
eps_i ~ N(0, I_k), i = 1..n                        independent noise per basis
v_i = MLP_i(eps_i)                                 [D], x-independent: the noise basis
a_i = softplus(A_i h(x) + b_i) + 1e-5              [D], x-dependent positive weights
z   = z0(h(x)) + sum_i a_i * v_i                   elementwise products
```
Mescheder et al.'s own MNIST encoders take this form (AVB's reference code, `full0_ac` and
`conv*_ac`: `z = z0 + sum_i a_i * v_i`). x enters only through the shift z0 and the
positive weights a_i, so an x-dependent scale per latent, which the plain implicit head
has to build out of an elu of sums, is one linear map here, as sigma(x) is for a Gaussian
VAE. With linear v_i the family is Gaussian with covariance
sum_i diag(a_i) Cov(v_i) diag(a_i); nonlinear v_i make it non-Gaussian. There is no density,
so AVB (`tfvae.AVB`) trains it against a discriminator.

The basis networks need a smaller step than the rest of the model, for the reason the
full-covariance head's off-diagonal units do (`tfvae.posteriors.gaussian_tril`). Their
gradient is a sum of per-draw terms g(z) dv_i/dtheta, mostly noise, and Adam takes a step
of ~lr in every weight whatever its signal-to-noise ratio, so at the model's learning rate
the v_i random-walk. The variance they add is paid for with information: the encoder
settles on a smaller KL and the decoder on a worse likelihood (benchmarks/README.md, "The
noise bases' step size"). `basis_step_scale` gives the bases a smaller effective step
(`GroupedDense` stores their weights divided by it), so they change only where their
gradient is consistent. Its default, 1e-2, is the measured one; 1e-3 did as well, the
plain step (1) far worse.

Its moments are cheap: the v_i do not depend on x, so
```none
E[z|x]   = z0 + sum_i a_i * E[v_i]
Cov[z|x] = sum_i diag(a_i) Cov[v_i] diag(a_i)      (the eps_i are independent)
```
with E[v_i] and Cov[v_i] estimated once per call from draws of eps_i shared by every x
(`ImplicitDistribution.sample_moments`), which AVB's adaptive contrast uses instead of
drawing z per example. Dropping the cross-basis terms, which are zero in expectation,
also removes their sampling noise from the estimate.

#### References
[1] Mescheder, Nowozin & Geiger (2017), Adversarial Variational Bayes, arXiv:1701.04722;
    the encoder of github.com/LMescheder/AdversarialVariationalBayes, avb/avb/models/.
"""

from tfvae import validation
from tfvae._tf import tf, tfk
from tfvae.posteriors.gaussian_diag import DIAG_SHIFT, scale_bias
from tfvae.posteriors.implicit import SamplerPosterior, check_noise_dim, noise_seed
from tfvae.registry import POSTERIORS


class GroupedDense(tfk.layers.Layer):
    """n independent dense layers applied to n groups: [..., n, in] -> [..., n, out].

    `step_scale` s stores the weights divided by s and multiplies them back in the forward
    pass: the same initial layer, with an Adam step s times smaller in the weights."""

    def __init__(self, groups, units, activation=None, step_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.groups, self.units, self.step_scale = groups, units, step_scale
        self.activation = tfk.activations.get(activation)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        # Glorot uniform per group, as tfk.layers.Dense initializes each of them.
        limit = (6.0 / (fan_in + self.units)) ** 0.5 / self.step_scale
        self.kernel = self.add_weight(
            "kernel", (self.groups, fan_in, self.units),
            initializer=tfk.initializers.RandomUniform(-limit, limit))
        self.bias = self.add_weight("bias", (self.groups, self.units), initializer="zeros")
        super().build(input_shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "units": self.units,
                "activation": tfk.activations.serialize(self.activation),
                "step_scale": self.step_scale}

    def effective_weights(self):
        """The kernel [n, in, out] and bias [n, out] the layer computes with: s times the
        stored ones (exactly the stored ones at s = 1)."""
        return self.step_scale * self.kernel, self.step_scale * self.bias

    def call(self, x):
        # One batched matmul over the groups, [n, P, in] @ [n, in, out]; an einsum
        # "...ni,nio->...no" differentiates into a broadcast product [P, n, in, out].
        if x.shape[-1] is None:
            raise ValueError(f"GroupedDense needs a static input width; got {x.shape}.")
        lead = tf.shape(x)[:-2]
        rows = tf.transpose(tf.reshape(x, [-1, self.groups, x.shape[-1]]), [1, 0, 2])
        kernel, bias = self.effective_weights()
        y = tf.transpose(tf.linalg.matmul(rows, kernel), [1, 0, 2]) + bias
        return self.activation(tf.reshape(y, tf.concat([lead, [self.groups, self.units]], 0)))


@POSTERIORS.register("implicit_basis")
class NoiseBasisPosterior(SamplerPosterior):
    """q(z|x) = the law of z0(x) + sum_i a_i(x) * v_i(eps_i); `has_density = False`.

    Args:
        latent_dim: D.
        bases: n, the number of noise bases. Default value: 16.
        noise_dim: k, the width of each eps_i ~ N(0, I_k). Default value: latent_dim.
        basis_units: hidden widths of each basis network v_i. Default value: (64, 64).
        activation: their activation. Default value: "elu" (smooth, as the reference's).
        init_scale: every a_i at h = 0 is init_scale / sqrt(n) (its bias), so that with
            v_i of unit variance each latent's sd starts near init_scale, the Gaussian
            heads' default. Default value: 1.0.
        basis_step_scale: the basis networks' effective Adam step relative to the rest of
            the model (`GroupedDense.step_scale`). Default value: 1e-2 (measured; see the
            module docstring).
        proposal_samples, proposal_scale: the importance-sampling proposal's (see
            `SamplerPosterior`).
    """

    def __init__(self, latent_dim, bases=16, noise_dim=None, basis_units=(64, 64),
                 activation="elu", init_scale=1.0, basis_step_scale=1e-2,
                 proposal_samples=256, proposal_scale=1.5, validate_args=False, **kwargs):
        super().__init__(latent_dim, proposal_samples=proposal_samples,
                         proposal_scale=proposal_scale, validate_args=validate_args, **kwargs)
        self.bases = validation.positive_int(bases, "bases")
        self.noise_dim = check_noise_dim(latent_dim if noise_dim is None else noise_dim)
        self.basis_units = validation.positive_ints(basis_units, "basis_units", min_length=0)
        self.activation = activation
        self.init_scale = validation.real(init_scale, "init_scale", minimum=DIAG_SHIFT,
                                          strict=True)
        n, d = self.bases, self.latent_dim
        if self.init_scale / n ** 0.5 <= DIAG_SHIFT:
            raise ValueError(f"`init_scale` / sqrt(bases) must exceed {DIAG_SHIFT} (each "
                             f"a_i starts there); got {self.init_scale} with {n} bases.")
        self.loc_layer = tfk.layers.Dense(d, name="loc")
        bias = scale_bias(self.init_scale / n ** 0.5)
        self.scale_layer = tfk.layers.Dense(n * d, name="scales",
                                            bias_initializer=tfk.initializers.Constant(bias))
        self.basis_step_scale = validation.positive(basis_step_scale, "basis_step_scale")
        step = self.basis_step_scale
        self.basis_layers = [GroupedDense(n, w, activation, step, name=f"basis_{i}")
                             for i, w in enumerate(self.basis_units)]
        self.basis_layers.append(GroupedDense(n, d, step_scale=step, name="basis_out"))

    @property
    def eps_dim(self):
        return self.bases * self.noise_dim

    def build(self, input_shape):
        # A sublayer may already be built (weights_and_shift or basis called on their own).
        shapes = [input_shape, input_shape]
        width = self.noise_dim
        for layer in self.basis_layers:
            shapes.append((None, self.bases, width))
            width = layer.units
        for layer, shape in zip([self.loc_layer, self.scale_layer, *self.basis_layers], shapes):
            if not layer.built:
                layer.build(shape)
        super().build(input_shape)

    def basis(self, eps):
        """v_i(eps_i): eps [..., n * k] -> [..., n, D]."""
        v = tf.reshape(eps, tf.concat([tf.shape(eps)[:-1], [self.bases, self.noise_dim]], 0))
        for layer in self.basis_layers:
            v = layer(v)
        return v

    def weights_and_shift(self, h):
        """a_i(x) [B, n, D] and z0(x) [B, D]."""
        a = tf.nn.softplus(self.scale_layer(h)) + DIAG_SHIFT
        return tf.reshape(a, [-1, self.bases, self.latent_dim]), self.loc_layer(h)

    def transform(self, h, eps):
        """z for h [B, F] and eps [S, B or 1, n * k] -> [S, B, D]; with eps [S, 1, .] the
        basis networks run S times, not S * B."""
        eps = self.check_eps(eps, h.dtype)
        a, z0 = self.weights_and_shift(h)
        v = self.basis(eps)                                     # [S, B or 1, n, D]
        if eps.shape[1] == 1:
            return z0 + tf.einsum("snd,bnd->sbd", v[:, 0], a)
        return z0 + tf.reduce_sum(v * a, -2)

    def sample_moments(self, h, n, seed, full):
        """Mean [B, D] and covariance [B, D, D] (`full`) or variance [B, D] of q(z|x), from
        n draws of each eps_i shared by every x; unbiased for each basis's moments, with
        the bases' cross-covariances set to their expectation, 0."""
        eps = tf.random.stateless_normal([n, self.eps_dim], noise_seed(seed), dtype=h.dtype)
        v = self.basis(eps)                                     # [n, bases, D]
        a, z0 = self.weights_and_shift(h)
        v_mean = tf.reduce_mean(v, 0)
        vc = v - v_mean
        mean = z0 + tf.einsum("nd,bnd->bd", v_mean, a)
        if not full:
            v_var = tf.reduce_sum(tf.square(vc), 0) / (n - 1.0)
            return mean, tf.einsum("nd,bnd->bd", v_var, tf.square(a))
        v_cov = tf.einsum("mni,mnj->nij", vc, vc) / (n - 1.0)    # [bases, D, D]
        return mean, tf.einsum("bni,nij,bnj->bij", a, v_cov, a)
