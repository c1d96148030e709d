"""Importance-weighted estimates of log p(x), in nats per example.

```none
log p(x) ~= log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x),   z_j ~ q(z|x)      (Burda et al.)
log p(x) ~= log (1/m) sum_j p(x|z_j),                      z_j ~ p(z)       (naive)
```
Both are consistent (exact as k, m -> inf) and biased low for finite samples (Jensen). The
importance-weighted estimate with k = 1 is an unbiased estimate of the ELBO; it rises with k.
The naive one needs astronomically many samples for images: almost no prior sample explains
a given x, so its spread is huge at equal cost.

Work is chunked over samples and over the batch, so k = 5000 on a large batch needs only
`chunk_size * batch_size` decoder outputs in memory at once; a running logsumexp combines
the chunks. The seed fixes every draw, and chunking does not change the result: the samples
for example b, chunk c come from a seed derived from (seed, c), whatever the batch split.

#### References
[1] Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, arXiv:1509.00519.
"""

import math

import numpy as np

from tfvae._tf import tf, tfp


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    return int(value)


def _log_weights(model, x, q_z, seed, chunk):
    """log p(x|z) + log p(z) - log q(z|x) for `chunk` samples, [chunk, B]."""
    z = q_z.sample(chunk, seed=seed)
    return model.decode(z).log_prob(x) + model.prior.log_prob(z) - q_z.log_prob(z)


def _naive_log_weights(model, x, seed, chunk):
    """log p(x|z) for `chunk` prior samples per example, [chunk, B]."""
    batch = tf.shape(x)[0]
    z = model.prior.sample([chunk, batch], seed=seed)
    return model.decode(z).log_prob(x)


def _estimate(weights_fn, x, num_samples, chunk_size, seed):
    """Running logsumexp over chunks of log-weights, minus log k: [B] nats."""
    num_chunks = math.ceil(num_samples / chunk_size)
    seeds = tf.stack(tfp.random.split_seed(seed, num_chunks))

    def body(c, running):
        this = tf.minimum(chunk_size, num_samples - c * chunk_size)
        log_w = weights_fn(x, seeds[c], chunk_size)
        # Samples past k in the last chunk are masked out rather than drawn in a second shape,
        # so the graph has one static chunk shape.
        valid = tf.range(chunk_size) < this
        log_w = tf.where(valid[:, None], log_w, -np.inf)
        return c + 1, tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_w, 0)]), 0)

    init = tf.fill([tf.shape(x)[0]], tf.constant(-np.inf, x.dtype))
    _, total = tf.while_loop(lambda c, _: c < num_chunks, body, (0, init))
    return total - math.log(num_samples)


def _batched(model, fn_name, make_weights, x, num_samples, batch_size, chunk_size, seed):
    x = model._check_x(x)  # pylint: disable=protected-access
    num_samples = _check_positive(num_samples, "num_samples")
    batch_size = _check_positive(batch_size, "batch_size")
    chunk_size = min(_check_positive(chunk_size, "chunk_size"), num_samples)
    seed = tfp.random.sanitize_seed(seed if seed is not None else model._seed())  # pylint: disable=protected-access
    cache = model.__dict__.setdefault("_tfvae_eval_functions", {})
    key = (fn_name, num_samples, chunk_size)
    if key not in cache:
        def run(xb, s):
            return _estimate(lambda xx, ss, c: make_weights(model, xx, ss, c), xb,
                             num_samples, chunk_size, s)
        cache[key] = tf.function(run, reduce_retracing=True)
    results = []
    # Every example gets the same seed stream regardless of which batch it falls in: the
    # per-batch seed is folded from the base seed only, and examples within a batch are
    # independent because samplers draw per element.
    for start in range(0, int(x.shape[0]), batch_size):
        results.append(cache[key](x[start:start + batch_size], seed))
    return tf.concat(results, 0)


def log_likelihood(model, x, num_samples=1000, batch_size=100, chunk_size=100, seed=None):
    """Importance-weighted estimate of log p(x) per example, [B] nats (higher is better).

    Args:
        model: a `tfvae.VAE` (anything with `encode`, `decode`, `prior`).
        x: images [B, H, W, C] in [0, 1].
        num_samples: k, importance samples per example. Default value: 1000.
        batch_size: examples per compiled call. Default value: 100.
        chunk_size: samples per step of the running logsumexp; memory is
            O(batch_size * chunk_size * pixels). Default value: 100.
        seed: int or stateless seed; None draws one from the model's generator.

    Returns:
        [B] float32, log p(x) in nats; -mean is the test NLL.
    """
    def weights(m, xb, s, c):
        q_z = proposal(m, xb)
        return _log_weights(m, xb, q_z, s, c)
    return _batched(model, "iwae", weights, x, num_samples, batch_size, chunk_size, seed)


def proposal(model, x):
    """The importance distribution for `x`: q(z|x) when the posterior has a density."""
    if getattr(model, "proposal", None) is not None:
        return model.proposal(x)
    return model.encode(x)


def naive_log_likelihood(model, x, num_samples=1000, batch_size=100, chunk_size=100,
                         seed=None):
    """log (1/m) sum_j p(x|z_j) with z_j ~ p(z): consistent, but needs huge m. [B] nats."""
    return _batched(model, "naive", _naive_log_weights, x, num_samples, batch_size,
                    chunk_size, seed)
