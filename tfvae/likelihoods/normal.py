"""Normal likelihood over pixels with a fixed, a learned per-pixel or a heteroscedastic scale.

```none
log p(x|z) = sum_pixels [ -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2 ]
```
With sigma = 1 this is -||x - mu||^2 / 2 - (D/2) log 2 pi: the MSE reconstruction term.
A learned sigma shrinks towards 0 on pixels the decoder gets exactly right (the background
of Fashion-MNIST is constant 0), which sends log p(x|z) to +inf; `min_scale` bounds it.
"""

from tfvae import validation
from tfvae._tf import tf, tfd, tfp
from tfvae.likelihoods.base import Likelihood
from tfvae.registry import LIKELIHOODS

SCALES = ("fixed", "per_pixel", "heteroscedastic")


@LIKELIHOODS.register("normal")
class NormalLikelihood(Likelihood):
    """p(x|z) = prod_pixels Normal(loc, sigma).

    Args:
        scale: "fixed" (sigma = `sigma`), "per_pixel" (one learned sigma per pixel, shared
            across images) or "heteroscedastic" (the decoder emits sigma for every image).
            Default value: "fixed".
        sigma: the fixed sigma, or the initial one for learned scales. Default value: 1.0.
        min_scale: lower bound on a learned sigma. Default value: 0.01 (1/100 of the
            [0, 1] pixel range; without a floor sigma collapses to 0).
    """

    def __init__(self, scale="fixed", sigma=1.0, min_scale=0.01, validate_args=False,
                 **kwargs):
        super().__init__(validate_args=validate_args, **kwargs)
        self.scale = validation.choice(scale, "scale", SCALES)
        self.sigma = validation.positive(sigma, "sigma")
        self.min_scale = validation.non_negative(min_scale, "min_scale")
        if scale != "fixed" and not self.sigma > self.min_scale:
            raise ValueError(f"`min_scale` must be below `sigma`; got min_scale={min_scale!r}, "
                             f"sigma={sigma!r}.")
        # softplus(raw + this) + min_scale = sigma at raw = 0: a learned scale starts at sigma.
        self._raw_sigma = (float(tfp.math.softplus_inverse(self.sigma - self.min_scale))
                           if scale != "fixed" else 0.0)
        self.params_per_channel = 2 if scale == "heteroscedastic" else 1

    def build(self, input_shape):
        if self.scale == "per_pixel":
            event_shape = input_shape[-3:]
            self.raw_scale = self.add_weight(
                name="raw_scale", shape=event_shape,
                initializer=tf.constant_initializer(self._raw_sigma))
        super().build(input_shape)

    def call(self, params):
        if self.scale == "fixed":
            loc, scale = params, tf.constant(self.sigma, params.dtype)
        elif self.scale == "per_pixel":
            loc, scale = params, self.min_scale + tf.nn.softplus(self.raw_scale)
        else:
            loc, raw = tf.split(params, 2, axis=-1)
            scale = self.min_scale + tf.nn.softplus(
                raw + self._raw_sigma)
        return tfd.Independent(
            tfd.Normal(loc=loc, scale=scale, validate_args=self.validate_args),
            reinterpreted_batch_ndims=3, validate_args=self.validate_args, name="p_x_given_z")
