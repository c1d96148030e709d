"""The objective-term contract.

```none
loss = sum_t weight_t(step) * mean_B term_t(fwd)
```
A term returns nats per example, [B], or a scalar for a batch-level quantity (MMD,
minibatch TC). Weights are applied by the model, never inside.

A term that owns an auxiliary network (a critic: AVB's T(x, z), FactorVAE's density-ratio
discriminator) sets `critic` and declares how `VAE.train_step` updates it: `critic_order`
("before" the model's step, on a fresh encoding of the batch, or "after" it, on the
model's own forward pass), `critic_steps` updates per train step, each by
`update_critic(fwd, seed)` with the critic's own optimizer (its clipping is that
optimizer's). The model splits variables by ownership, so the critic moves only by its own
updates and the model's optimizer never sees it.
"""

from tfvae import schedules
from tfvae import validation
from tfvae._tf import tf

CRITIC_ORDERS = ("before", "after")


def check_weight(weight, name="weight"):
    """A non-negative finite float, or a schedule (a callable step -> weight)."""
    if callable(weight):
        return weight
    return validation.non_negative(weight, name)


class Term(tf.Module):
    """One summand of the training objective.

    A tf.Module, so a critic the term owns is tracked (checkpointed) by the model.

    Args:
        weight: a non-negative float, or a schedule step -> weight (e.g.
            `tfvae.schedules.LinearSchedule`). Default value: 1.0.
        name: the metric name under which `fit` reports the term's batch mean.
            Default value: the registered name.
    """

    #: the network the term trains by its own optimizer, or None.
    critic = None
    #: "before" or "after" the model's step (terms with a critic).
    critic_order = "after"
    #: critic updates per train step.
    critic_steps = 1
    #: extra scalars `metrics(fwd)` returns, reported as "<term name>_<key>".
    metric_keys = ()
    #: True when the term's value estimates KL(q(z|x) || p(z)) for a posterior without a
    #: density (AVB): the model then reports it as `kl` and the ELBO estimate from it.
    estimates_rate = False

    def __init__(self, weight=1.0, name=None):
        super().__init__(name=name or self.registry_name)
        self.weight = check_weight(weight)

    def weight_at(self, step):
        """The weight at optimizer step `step` (an int64 scalar tensor)."""
        return schedules.value_at(self.weight, step)

    def __call__(self, fwd):
        raise NotImplementedError

    def metrics(self, fwd):
        """Diagnostics of this pass, {key: scalar} with keys from `metric_keys`."""
        del fwd
        return {}

    def update_critic(self, fwd, seed):
        """One step of the critic on this pass; returns {"loss", "accuracy_positive",
        "accuracy_negative"}, scalars."""
        raise NotImplementedError

    def critic_metrics(self, fwd, seed):
        """The critic's loss and accuracies on this pass, without updating it."""
        raise NotImplementedError

    def build_critic(self, image_shape, latent_dim):
        """Creates the critic's variables (and its optimizer's) before any training, so
        checkpoints and exports see them."""
        del image_shape, latent_dim
