"""Importance-weighted estimates of log p(x), in nats per example.

```none
log p(x) ~= log (1/k) sum_j p(x|z_j) p(z_j) / r(z_j|x),   z_j ~ r(z|x)      (Burda et al.)
log p(x) ~= log (1/m) sum_j p(x|z_j),                      z_j ~ p(z)       (naive)
```
The proposal r is q(z|x), or `model.proposal(x)` when a model defines one (AVB's implicit
posterior has no density; it fits a Gaussian to samples of q). Both estimates are consistent
(exact as k, m -> inf) and biased low for finite samples (Jensen). With k = 1 the
importance-weighted estimate is an unbiased estimate of the ELBO; it rises with k. The naive
one needs astronomically many samples for images: almost no prior sample explains a given x,
so its spread is huge at equal cost.

Memory stays bounded: the k samples are processed `chunk_size` at a time with a running
logsumexp, and examples `batch_size` at a time, so only batch_size * chunk_size decoder
outputs exist at once (k = 5000 on any batch is fine). Chunking does not change the result:
the noise of example i is drawn from a seed folded from (seed, i) alone, as one [k, D]
block, so neither the batch split nor the chunk size moves a single draw. (Proposals outside
the multivariate-normal family are sampled with one seed per chunk instead, so their draws
depend on the batch; they give z and log r(z|x) together through
`experimental_sample_and_log_prob`, so a flow proposal is never inverted.)
`log_likelihood_batch` is one batch of `log_likelihood` built from the same two pieces, the
per-example noise and the chunked estimator, so a SavedModel signature that calls it inside
a `tf.function` reproduces the evaluation's numbers.

#### References
[1] Burda, Grosse & Salakhutdinov (2016), Importance Weighted Autoencoders, arXiv:1509.00519.
"""

import math

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfd, tfp
from tfvae.seeds import stateless_seed


def proposal(model, x):
    """The importance distribution r(z|x), batch [B], event [D]: q(z|x) or `model.proposal`."""
    if getattr(model, "proposal", None) is not None:
        return model.proposal(x)
    return model.encode(x)


def _per_example_noise(seed, first_index, batch, num_samples, latent_dim, dtype, padded):
    """eps [padded, B, D]: N(0, I) for the first k = num_samples rows, zeros after.

    Example i's k x D block depends only on (seed, first_index + i), never on the chunking.
    """
    indices = tf.range(batch, dtype=tf.int32) + first_index
    seeds = tf.map_fn(lambda i: tf.random.experimental.stateless_fold_in(seed, i, alg="philox"),
                      indices, fn_output_signature=tf.TensorSpec([2], tf.int32))
    eps = tf.map_fn(lambda s: tf.random.stateless_normal([num_samples, latent_dim], s, dtype=dtype,
                                                         alg="philox"),
                    seeds, fn_output_signature=tf.TensorSpec([num_samples, latent_dim], dtype))
    eps = tf.pad(eps, [[0, 0], [0, padded - num_samples], [0, 0]])
    return tf.transpose(eps, [1, 0, 2])


def _noise(model, x, seed, first_index, num_samples, chunk_size):
    """The standard-normal noise of examples first_index.., [num_chunks, chunk, B, D]."""
    num_chunks = math.ceil(num_samples / chunk_size)
    eps = _per_example_noise(seed, tf.cast(first_index, tf.int32), tf.shape(x)[0], num_samples,
                             model.latent_dim, x.dtype, num_chunks * chunk_size)
    return tf.reshape(eps, tf.concat([[num_chunks, chunk_size], tf.shape(eps)[1:]], 0))


def _sizes(num_samples, chunk_size):
    num_samples = validation.positive_int(num_samples, "num_samples")
    return num_samples, min(validation.positive_int(chunk_size, "chunk_size"), num_samples)


def _seed(model, seed):
    """A stateless int32 [2] seed: `seed` as given, or a fresh one from the model."""
    if seed is None:
        return model.next_seed()
    return stateless_seed(seed)


def _check_proposal(model):
    posterior = getattr(model, "posterior", None)
    if posterior is not None and not posterior.has_proposal:
        raise ValueError(f"The {posterior.registry_name!r} posterior offers no importance "
                         "sampling proposal, so log p(x) is not estimated for it.")


def log_likelihood_batch(model, x, num_samples=1000, chunk_size=100, seed=None,
                         first_index=0):
    """The importance-weighted estimate of log p(x) for one batch, [B] nats.

    The same draws as `log_likelihood` gives examples first_index.. first_index + B - 1 for
    the same seed, so a batch evaluated alone (or inside a SavedModel signature) reproduces
    the full evaluation. Usable inside a `tf.function`: `seed` may be an int32 [2] tensor
    and `first_index` an int32 scalar tensor; `num_samples` and `chunk_size` are Python ints
    (they fix the graph's shapes).

    Args:
        model: a `tfvae.VAE` or any model with `encode`/`proposal`, `decode`, `prior`,
            `latent_dim`.
        x: images [B, H, W, C].
        num_samples: k, importance samples per example. Default value: 1000.
        chunk_size: samples per step of the running logsumexp. Default value: 100.
        seed: int or stateless seed int32 [2]; None draws one from the model's generator.
        first_index: the index in the evaluation of the batch's first example. Default
            value: 0.
    """
    _check_proposal(model)
    num_samples, chunk_size = _sizes(num_samples, chunk_size)
    x = tf.convert_to_tensor(x, dtype_hint=tf.float32)
    seed = _seed(model, seed)
    eps = _noise(model, x, seed, first_index, num_samples, chunk_size)
    return _iwae_batch(model, x, eps, seed, num_samples, chunk_size)


def _reparameterizable(r):
    """Whether z = r.bijector(eps), eps ~ N(0, I): the MultivariateNormal family."""
    return isinstance(r, tfd.MultivariateNormalLinearOperator)


def _log_weights(model, x, z, log_r):
    """log p(x|z) + log p(z) - log r(z|x), [chunk, B]."""
    return model.decode(z).log_prob(x) + model.prior.log_prob(z) - log_r


def _iwae_batch(model, x, eps, seed, num_samples, chunk_size):
    """Running logsumexp over chunks of k log-weights, minus log k: [B] nats.

    Args:
        eps: [num_chunks, chunk, B, D] standard-normal noise, or None to draw from the
            proposal with chunk-seeded `sample` (proposals outside the MVN family).
    """
    r = proposal(model, x)
    num_chunks = math.ceil(num_samples / chunk_size)
    if eps is not None and _reparameterizable(r):
        def draw(c):
            z = r.bijector.forward(tf.gather(eps, c))
            return z, r.log_prob(z)
    else:
        # z with its log r in one pass: a flow proposal is never inverted.
        seeds = tf.stack(tfp.random.split_seed(seed, num_chunks))
        def draw(c):
            return r.experimental_sample_and_log_prob(chunk_size, seed=seeds[c])
    return _logmeanexp_chunks(lambda c: _log_weights(model, x, *draw(c)), x, num_samples,
                              chunk_size)


def _naive_batch(model, x, eps, seed, num_samples, chunk_size):
    """log (1/m) sum_j p(x|z_j), z_j ~ p(z), with the same chunking: [B] nats."""
    del seed
    prior = model.prior
    return _logmeanexp_chunks(
        lambda c: model.decode(prior.bijector.forward(tf.gather(eps, c))).log_prob(x),
        x, num_samples, chunk_size)


def _logmeanexp_chunks(log_weights, x, num_samples, chunk_size):
    """log (1/k) sum_j exp(log_w_j) over k = num_samples, one [chunk, B] block at a time."""
    num_chunks = math.ceil(num_samples / chunk_size)

    def body(c, running):
        log_w = log_weights(c)
        # The last chunk may run past k: mask the extra samples instead of a second shape.
        valid = tf.range(chunk_size) + c * chunk_size < num_samples
        log_w = tf.where(valid[:, None], log_w, tf.constant(-np.inf, log_w.dtype))
        return c + 1, tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_w, 0)]), 0)

    init = tf.fill([tf.shape(x)[0]], tf.constant(-np.inf, x.dtype))
    _, total = tf.while_loop(lambda c, _: c < num_chunks, body, (0, init))
    return total - math.log(num_samples)


def _run(model, estimator, x, num_samples, batch_size, chunk_size, seed, jit_compile):
    x = model.check_inputs(x)
    num_samples, chunk_size = _sizes(num_samples, chunk_size)
    batch_size = validation.positive_int(batch_size, "batch_size")
    seed = _seed(model, seed)
    # One compiled function per (estimator, k, chunk) per model: repeated calls don't retrace.
    # The noise is drawn outside XLA: XLA's RNG kernels give other numbers for the same
    # stateless seed, and the estimate must not depend on jit_compile.
    cache = model.__dict__.setdefault("_tfvae_eval_functions", {})
    key = (estimator.__name__, num_samples, chunk_size, jit_compile)
    if key not in cache:
        def noise(xb, s, first):
            return _noise(model, xb, s, first, num_samples, chunk_size)

        def estimate(xb, eps, s):
            return estimator(model, xb, eps, s, num_samples, chunk_size)
        cache[key] = (tf.function(noise, reduce_retracing=True),
                      tf.function(estimate, jit_compile=jit_compile, reduce_retracing=True))
    noise_fn, estimate_fn = cache[key]
    results = []
    for start in range(0, int(x.shape[0]), batch_size):
        xb = x[start:start + batch_size]
        results.append(estimate_fn(xb, noise_fn(xb, seed, tf.constant(start, tf.int32)), seed))
    return tf.concat(results, 0)


def log_likelihood(model, x, num_samples=1000, batch_size=100, chunk_size=100, seed=None,
                   jit_compile=False):
    """Importance-weighted estimate of log p(x) per example, [B] nats (higher is better).

    Args:
        model: a `tfvae.VAE` or any model with `encode`/`proposal`, `decode`, `prior`,
            `latent_dim`.
        x: images [B, H, W, C] in [0, 1].
        num_samples: k, importance samples per example. Default value: 1000.
        batch_size: examples per compiled call. Default value: 100.
        chunk_size: samples per step of the running logsumexp; peak memory is
            O(batch_size * chunk_size * pixels). Default value: 100.
        seed: int or stateless seed; None draws one from the model's generator.
        jit_compile: XLA-compile the estimator. Default value: False (see the benchmarks).

    Returns:
        [B] float32, log p(x) in nats; the test NLL is its negated mean.
    """
    _check_proposal(model)
    return _run(model, _iwae_batch, x, num_samples, batch_size, chunk_size, seed, jit_compile)


def naive_log_likelihood(model, x, num_samples=1000, batch_size=100, chunk_size=100,
                         seed=None, jit_compile=False):
    """log (1/m) sum_j p(x|z_j) with z_j ~ p(z): consistent, but needs huge m. [B] nats."""
    return _run(model, _naive_batch, x, num_samples, batch_size, chunk_size, seed, jit_compile)
