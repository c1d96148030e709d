"""Factorized Bernoulli likelihood over pixels, parameterized by logits.

```none
log p(x|z) = sum_pixels [ x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) ]
           = -sum_pixels BCE(x, sigmoid(l))
```
On grey-level x in [0, 1] this is the usual (continuous) cross-entropy, which is not a
normalized density; binarize the data for honest log-likelihoods.
"""

from tfvae._tf import tf, tfd
from tfvae.likelihoods.base import Likelihood, check_unit_interval
from tfvae.registry import LIKELIHOODS


@LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    """p(x|z) = prod_pixels Bernoulli(sigmoid(logits)); mean() gives pixel probabilities."""

    def call(self, logits):
        # tfd.Bernoulli's validate_args would reject grey levels, which are allowed on
        # purpose (the continuous cross-entropy); `check_values` guards the [0, 1] range.
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=logits.dtype),
            reinterpreted_batch_ndims=3, validate_args=self.validate_args, name="p_x_given_z")

    def check_values(self, x):
        check_unit_interval(x, "The Bernoulli likelihood")
