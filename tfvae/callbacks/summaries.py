"""What the train app writes to TensorBoard each epoch besides the hooks' scalars.

`EpochScalarsCallback` writes every metric of `fit`'s logs each epoch, in the run's `train`
and `validation` TensorBoard runs (one chart per tag, both runs overlaid), in sections that
TensorBoard lists in this order:

```none
1_objective/{loss, elbo, reconstruction, kl}    what the optimizer minimizes, and the ELBO
2_terms/<term> and <term>_<diagnostic>          the objective's other terms
3_critics/<term>_critic_<key>                   density-ratio critics (estimates, not bounds)
4_decomposition/<key>                           validation diagnostics (validation run only)
5_optimizer/learning_rate
``` What `SummaryCallback` writes each
epoch (step = epoch index), in `validation`, computed on a fixed set of test images:

```none
images/reconstructions   rows of inputs, each followed by its reconstruction E[x | z = E[z|x]]
images/prior_samples     E[x|z] for fixed z ~ p(z) (the same z every epoch: watch them sharpen)
images/latent_traversal  row d: z_d swept over [-3, 3], the other dims at one test image's
                         posterior mean; rows are the most active dims, by Var_x E[z_d|x]
posterior/mean           histogram of E[z_d|x] over test images and dims
posterior/stddev         histogram of the marginal posterior std devs sqrt(Cov[z|x]_dd)
```
plus the embedding projector (`tfvae.callbacks.projector`): the posterior means of the test
images, labelled, with a sprite of the images.
"""

import numpy as np

from tfvae._tf import tf, tfk
from tfvae.aggregate import MINIBATCH_BIAS
from tfvae.callbacks.images import image_grid, interleave_rows
from tfvae.callbacks.projector import ProjectorWriter


def posterior_moments(model, x, batch_size=250, num_samples=32, seed=0):
    """Posterior means and marginal std devs of each example, ([N, D], [N, D]).

    Exact when q(z|x) has them; estimated from `num_samples` draws otherwise (implicit
    posteriors), so every model gets a histogram.
    """
    means, stds = [], []
    for start in range(0, len(x), batch_size):
        q_z = model.encode(x[start:start + batch_size])
        try:
            mean, std = q_z.mean(), q_z.stddev()
        except (NotImplementedError, TypeError, AttributeError, ValueError):
            z = q_z.sample(num_samples, seed=tf.constant([seed, start], tf.int32))
            mean, std = tf.reduce_mean(z, 0), tf.math.reduce_std(z, 0)
        means.append(np.asarray(mean))
        stds.append(np.asarray(std))
    return np.concatenate(means), np.concatenate(stds)


class SummaryCallback(tfk.callbacks.Callback):
    """Writes images, posterior histograms and the projector embedding every epoch.

    Args:
        context: the `CallbackContext` (its `images`, `labels` and `writer("validation")`).
        num_images: reconstructions shown (two rows per 8). Default value: 16.
        num_samples: prior samples shown. Default value: 64.
        traversal_dims: latent dims shown in the traversal. Default value: 10.
        traversal_steps: values per traversed dim, on [-3, 3]. Default value: 9.
        seed: fixes the prior samples' z. Default value: 0.
    """

    def __init__(self, context, num_images=16, num_samples=64, traversal_dims=10,
                 traversal_steps=9, seed=0):
        super().__init__()
        self.context = context
        self.num_images = min(num_images, len(context.images))
        self.traversal_dims = traversal_dims
        self.traversal_steps = traversal_steps
        latent_dim = context.model.latent_dim
        self.z_prior = np.random.default_rng(seed).standard_normal(
            (num_samples, latent_dim)).astype(np.float32)
        self.projector = ProjectorWriter(context.run_dir, context.images, context.labels,
                                         context.label_names)

    def _decode_mean(self, z):
        return np.asarray(self.context.model.decode(z).mean())

    def on_epoch_end(self, epoch, logs=None):
        self.write(epoch)

    def write(self, step):
        model, x = self.context.model, self.context.images
        means, stds = posterior_moments(model, x)
        shown = x[:self.num_images]
        recon = np.asarray(model(shown, training=False))
        with self.context.writer("validation").as_default(step=step):
            tf.summary.image(
                "images/reconstructions",
                image_grid(interleave_rows(shown, recon, 8), cols=8)[None], step=step,
                description="Rows of test inputs, each followed by its reconstruction "
                            "E[x | z = E[z|x]].")
            tf.summary.image(
                "images/prior_samples",
                image_grid(self._decode_mean(self.z_prior))[None], step=step,
                description="E[x|z] for the same z ~ p(z) every epoch.")
            tf.summary.image(
                "images/latent_traversal", self._traversal(means)[None], step=step,
                description=f"Row d: z_d swept over [-3, 3] with the other dims at the first "
                            f"test image's posterior mean; rows are the {self.traversal_dims} "
                            "most active dims (largest Var_x E[z_d|x]), most active first.")
            tf.summary.histogram("posterior/mean", means, step=step,
                                 description="E[z_d|x] over test images and latent dims.")
            tf.summary.histogram("posterior/stddev", stds, step=step,
                                 description="Marginal posterior std devs sqrt(Cov[z|x]_dd).")
        self.context.writer("validation").flush()
        self.projector.write(means)

    def _traversal(self, means):
        activity = np.var(means, axis=0)
        dims = np.argsort(-activity, kind="stable")[:self.traversal_dims]
        values = np.linspace(-3.0, 3.0, self.traversal_steps, dtype=np.float32)
        z = np.repeat(means[:1], len(dims) * len(values), axis=0)
        for row, d in enumerate(dims):
            z[row * len(values):(row + 1) * len(values), d] = values
        return image_grid(self._decode_mean(z), cols=len(values))


#: the objective's own scalars; they open the scalars page
OBJECTIVE = ("loss", "elbo", "reconstruction", "kl")


def scalar_tag(name):
    """The TensorBoard tag of log entry `name` (without its `val_` prefix): its section
    (numbered, as TensorBoard sorts sections by name) and the name."""
    if name in OBJECTIVE:
        return f"1_objective/{name}"
    if name.startswith("decomposition_"):
        return f"4_decomposition/{name[len('decomposition_'):]}"
    if "_critic_" in name:
        return f"3_critics/{name}"
    if name == "learning_rate":
        return f"5_optimizer/{name}"
    return f"2_terms/{name}"


#: what each validation decomposition key is (`tfvae.evaluation.elbo_decomposition`)
DECOMPOSITION = {
    "mi": "Index-code mutual information I_q(x; z)",
    "tc": "Total correlation TC(q(z))",
    "dim_kl": "Dimension-wise KL, sum_d KL(q(z_d) || p(z_d))",
    "aggregate_kl": "KL(q(z) || p(z)) of the aggregate posterior (tc + dim_kl)",
    "kl": "E_x KL(q(z|x) || p(z)), analytic where TFP has the closed form",
    "active_units": "Active units: latents whose posterior mean varies with x (variance > "
                    "0.01; Burda et al.), an exact count",
    "gaussian_kl_bound": "KL(N(m, S) || p(z)) for the codes' mean and covariance: a lower "
                         "bound on KL(q(z) || N(0, I)), estimated (bias-corrected) from one "
                         "code per image",
}


def _first_paragraph(cls):
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def scalar_description(name, model=None):
    """What the epoch scalar `name` (without `val_`) is, for TensorBoard's description: the
    quantity, and whether it is exact, a bound, or an estimate (with its bias)."""
    epoch_mean = " Epoch mean of the batch means."
    has_density = getattr(model, "has_density", True)
    terms = {t.name: t for t in getattr(model, "terms", ())}
    averaged = any(getattr(t, "critic_average", None) is not None for t in terms.values())
    which = (" Training batches read the critic's last step, validation the average of its "
             "weights." if averaged else "")
    if name == "loss":
        return "The objective the optimizer minimizes (the weighted terms), per image." + \
            epoch_mean
    if name == "elbo":
        if not has_density:
            return ("The critic's ELBO estimate per image (nats): NOT a bound, biased either "
                    "way; the run summary reports log p(x) by importance sampling." + which)
        return ("ELBO per image (nats): a lower bound on log p(x), estimated by Monte Carlo "
                "over z ~ q(z|x) (unbiased for the bound)." + epoch_mean)
    if name == "kl" and not has_density:
        return ("The critic's estimate of KL(q(z|x) || p(z)) per image (nats): not a bound, "
                "biased either way." + which + epoch_mean)
    if name.startswith("decomposition_"):
        key = name[len("decomposition_"):]
        return (DECOMPOSITION.get(key, key) + ", over the validation images' aggregate "
                "posterior: exact sums for Gaussian posteriors up to 5,000 images (unbiased; "
                "one sample per image), kNN entropy estimates otherwise (biased at finite n "
                "in high D). Estimates below 0 are logged with their cause.")
    if "_critic_" in name:
        return ("A density-ratio critic's own loss or accuracy on its training batches: a "
                "diagnostic of the critic, not of the model." + epoch_mean)
    if name == "learning_rate":
        return "The optimizer's learning rate at the end of the epoch (exact)."
    if name == "reconstruction":
        return ("E_q[-log p(x|z)] per image (nats), Monte Carlo over z ~ q(z|x) (unbiased)." +
                epoch_mean)
    if name == "kl":
        return ("KL(q(z|x) || p(z)) per image (nats): analytic where TFP has the closed form, "
                "else a Monte-Carlo estimate (unbiased)." + epoch_mean)
    if name in terms:
        text = _first_paragraph(type(terms[name]))
        if getattr(terms[name], "estimator", None) in ("mss", "mws"):
            text += f" Biased: {MINIBATCH_BIAS} in batches of M, so TC can read below 0."
        elif getattr(terms[name], "critic", None) is not None:
            text += " A critic's estimate, not a bound." + which
        return text + epoch_mean
    for term_name, term in terms.items():
        if name.startswith(term_name + "_"):
            critic = " (it comes from a critic: an estimate, not a bound)" \
                if getattr(term, "critic", None) is not None else ""
            return (f"The {term_name} term's diagnostic `{name[len(term_name) + 1:]}`"
                    f"{critic}; see {type(term).__name__}." + epoch_mean)
    return f"The model's metric `{name}`." + epoch_mean


class EpochScalarsCallback(tfk.callbacks.Callback):
    """Writes every metric of the epoch's `logs` as a scalar, tagged by `scalar_tag`:
    `<name>` in the run's `train` sub-run, `val_<name>` in `validation`, each with its
    `scalar_description` (TensorBoard shows it beside the chart).

    It uses the context's writers, one per directory: TensorBoard's Python loader follows
    one event file per directory at a time, so a second live writer there (Keras' own
    TensorBoard callback beside the image writer) hides one of them from a running
    TensorBoard. Place it after callbacks that add entries to `logs`.
    """

    def __init__(self, context):
        super().__init__()
        self.context = context

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        groups = {"train": {k: v for k, v in logs.items() if not k.startswith("val_")},
                  "validation": {k[4:]: v for k, v in logs.items() if k.startswith("val_")}}
        lr = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if lr is not None and not callable(lr):
            groups["train"].setdefault("learning_rate", lr)
        for name, values in groups.items():
            if not values:
                continue
            writer = self.context.writer(name)
            with writer.as_default(step=epoch):
                for key, value in values.items():
                    try:
                        value = float(value)
                    except (TypeError, ValueError):
                        continue
                    tf.summary.scalar(scalar_tag(key), value, step=epoch,
                                      description=scalar_description(key, self.model))
            writer.flush()
