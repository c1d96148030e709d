"""The train app's report: the wall time of each epoch, and the closing lines."""

import math
import time

import numpy as np

from tfvae._tf import tfk
from tfvae.aggregate import MINIBATCH_BIAS
from tfvae.apps._train_data import eval_batch_size

# The closing log-likelihood of a model without a posterior density (AVB): importance
# samples per image and images (the first of the test split); ~1 min on 2 CPU cores.
CLOSING_NLL_SAMPLES = 100
CLOSING_NLL_EXAMPLES = 500


class EpochTimer(tfk.callbacks.Callback):
    """Wall time of each epoch's training steps (validation excluded), for images/s.

    No batch hooks: the clock stops when validation begins (or at the epoch end).
    """

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._stop()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def _stop(self):
        if self._t0 is not None:
            self.seconds.append(time.perf_counter() - self._t0)
            self._t0 = None


def closing_log_likelihood(model, images):
    """The line reporting log p(x) by importance sampling (tfvae.evaluation.log_likelihood)
    on the first CLOSING_NLL_EXAMPLES test images: a stochastic lower bound, in nats."""
    from tfvae import evaluation  # noqa: PLC0415  (only models without a density need it)
    x = images[:CLOSING_NLL_EXAMPLES]
    log_px = evaluation.log_likelihood(model, x, num_samples=CLOSING_NLL_SAMPLES, seed=0)
    log_px = np.asarray(log_px, np.float64)
    return (f"Test log p(x) by importance sampling (k={CLOSING_NLL_SAMPLES}, first {len(x)} "
            f"test images; a stochastic lower bound, tighter with k: python -m "
            f"tfvae.apps.evaluate --model EXPORT --num-samples 1000): {log_px.mean():.2f} "
            f"± {log_px.std() / math.sqrt(len(x)):.2f} nats per image")


def minibatch_terms_line(model, metrics, batch_size):
    """What the objective's minibatch MI / TC / dimension-wise KL numbers are (beta-TCVAE),
    and which of them read below 0 because of the estimator's bias; None without them."""
    from tfvae.objectives.tc import MinibatchDecompositionTerm  # noqa: PLC0415
    terms = [t for t in getattr(model, "terms", ())
             if isinstance(t, MinibatchDecompositionTerm) and t.name in metrics]
    if not terms:
        return None
    line = (f"{', '.join(t.name for t in terms)}: {terms[0].estimator} minibatch estimates "
            f"(test batches of {batch_size}, N = {terms[0].dataset_size}), {MINIBATCH_BIAS}; "
            "the validation decomposition (TensorBoard, 4_decomposition) sums exactly")
    negative = [f"{t.name} {metrics[t.name]:.2f}" for t in terms if metrics[t.name] <= -0.005]
    if negative:
        line += f". Below 0 from that bias, not a negative divergence: {', '.join(negative)}"
    return line


def summary(cfg, result):
    """The closing lines: test metrics, speed, where everything went."""
    m = result.metrics
    lines = ["", f"Done: run {result.run_name!r}, {result.iterations} optimizer steps."]
    if "elbo" in m:
        pixels = math.prod(result.data.image_shape)
        extra = ""
        if result.model.likelihood.registry_name == "bernoulli" and result.data.binarize:
            extra = f" ({-m['elbo'] / (pixels * math.log(2)):.4f} bits/dim)"
        label = "Test ELBO" if result.model.has_density else \
            "Test ELBO estimate (the critic's, not a bound: biased either way)"
        lines.append(f"{label}: {m['elbo']:.2f} nats per image{extra}; "
                     + ", ".join(f"{k} {v:.2f}" for k, v in m.items() if k != "elbo"))
        terms_line = minibatch_terms_line(result.model, m, eval_batch_size(
            len(result.data.test_images), cfg.batch_size))
        if terms_line:
            lines.append(terms_line)
        if not result.model.has_density:
            lines.append(closing_log_likelihood(result.model, result.data.test_images))
    else:
        lines.append("Test metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
    if result.epoch_seconds:
        steady = result.epoch_seconds[1:] or result.epoch_seconds
        per_epoch = min(result.data.steps_per_epoch * cfg.batch_size, result.data.num_train)
        n = len(result.epoch_seconds)
        which = "median epoch after the first" if n > 1 else \
            "one epoch, including the step's compilation"
        lines.append(f"Training: {n} epoch{'s' if n > 1 else ''} in "
                     f"{result.train_seconds:.1f} s, {per_epoch / float(np.median(steady)):.0f} "
                     f"images/s ({which})")
    lines += [f"TensorBoard logs: {result.run_dir}  (python -m tfvae.apps.tensorboard "
              f"--logdir {cfg.logdir})",
              f"Checkpoints: {result.manager.directory}"]
    if result.export_path:
        lines.append(f"SavedModel: {result.export_path}  (python -m tfvae.apps.sample --model "
                     f"{result.export_path} --num 64 --out samples.png)")
    else:
        lines.append("SavedModel: not written (--no-export)")
    return "\n".join(lines)
