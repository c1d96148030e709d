"""Disentanglement metrics on data with known factors: MIG, MIG (Chen et al.), FactorVAE score.

DCI and SAP (which fit scikit-learn predictors) live in `dci_sap.py` and are re-exported
here, with `evaluate_all` running every metric. Each metric takes

- `encoder`: a function from observations [B, ...] to codes: an array or tensor [B, D]
  (the posterior means), a `tfd.Distribution` with batch [B] and event [D] (its mean is
  used), or a (loc, scale) pair; `mig_chen` needs the distribution or the pair;
- `data`: a ground-truth source (`tfvae.evaluation.ground_truth`), or a dataset name;
- `seed`: the seed of a `numpy.random.Generator`; a metric is a pure function of it.

Hyperparameters are disentanglement_lib's (Locatello et al. 2019,
disentanglement_lib/config/unsupervised_study_v1/metric_configs/*.gin) unless stated; its
`batch_size` for encoding only changes speed, so points are drawn at once and encoded in
chunks of `encode_batch`. All scores are in [0, 1], higher is more disentangled.
"""

import numpy as np

from tfvae.evaluation.dci_sap import dci, sap
from tfvae.evaluation.factor_codes import (ENCODE_BATCH, check_count, encode, loc_scale,
                                           sample_codes)
from tfvae.evaluation.ground_truth import check_ground_truth

__all__ = ["mig", "mig_from_codes", "dimension_labels", "mig_chen", "factor_vae_score", "dci",
           "sap", "evaluate_all", "sample_codes", "discrete_mutual_info"]


# ---------------------------------------------------------------------------- MIG

def discrete_mutual_info(a, b):
    """I(a; b) in nats between two integer label arrays [N] (sklearn's mutual_info_score)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= len(ai)
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log(joint[nz] / outer[nz])))


def _histogram_discretize(codes, num_bins):
    """int [N, D]: each dim's bin among `num_bins` equal-width bins over its own range."""
    return np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T], -1)


def mig_from_codes(codes, factors, num_bins=20):
    """MIG of codes [N, D] against factor classes [N, K] (disentanglement_lib `_compute_mig`).

    Each code dim is discretized into `num_bins` equal-width bins; for each factor k,
    MIG_k = (I(z_(1); y_k) - I(z_(2); y_k)) / H(y_k) with z_(1), z_(2) the two dims that
    carry the most information on y_k (Chen et al. 2018, Eq. 6, with discrete estimates).

    Returns:
        dict: "mig" (mean over factors), "mig_per_factor" [K], "mutual_info" [D, K] nats,
        "factor_entropy" [K] nats.
    """
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"MIG needs codes [N, D] with D >= 2; got shape {codes.shape}.")
    binned = _histogram_discretize(codes, num_bins)
    m = np.array([[discrete_mutual_info(binned[:, d], y) for y in factors.T]
                  for d in range(codes.shape[1])])
    entropy = np.array([discrete_mutual_info(y, y) for y in factors.T])
    if np.any(entropy == 0):
        raise ValueError(f"factor(s) {np.nonzero(entropy == 0)[0].tolist()} take a single value "
                         f"in the {len(codes)} points; MIG needs at least two.")
    top = np.sort(m, axis=0)[::-1]
    per_factor = (top[0] - top[1]) / entropy
    return {"mig": float(per_factor.mean()), "mig_per_factor": per_factor, "mutual_info": m,
            "factor_entropy": entropy}


def dimension_labels(mig_result, factor_names, min_fraction=0.1):
    """For latent-traversal figures: per code dim, the factor it is most informative about.

    Args:
        mig_result: the dict of `mig` or `mig_from_codes`.
        factor_names: K names (`data.factor_names`).
        min_fraction: a dim whose best I(z_d; y_k) / H(y_k) is below this gets None.

    Returns:
        list of D (name, fraction) pairs, or None for dims that carry no factor.
    """
    frac = mig_result["mutual_info"] / mig_result["factor_entropy"][None]
    best = np.argmax(frac, axis=1)
    return [(factor_names[k], float(frac[d, k])) if frac[d, k] >= min_fraction else None
            for d, k in enumerate(best)]


def mig(encoder, data, seed=0, num_points=10000, num_bins=20, encode_batch=ENCODE_BATCH):
    """Mutual Information Gap, disentanglement_lib's histogram variant.

    Args:
        num_points: points drawn from `data`. Default value: 10000.
        num_bins: equal-width bins per code dim. Default value: 20.
    """
    data = check_ground_truth(data)
    check_count("num_points", num_points, 2, "mutual information needs points")
    codes, factors = sample_codes(encoder, data, num_points, np.random.default_rng(seed),
                                  encode_batch=encode_batch)
    return mig_from_codes(codes, factors, num_bins)


def _entropies(z, loc, scale, num_samples, rng, chunk=64):
    """[D]: -E log q(z_d), q(z_d) = mean_n N(z_d; loc_nd, scale_nd), at <= num_samples z's.

    z, loc, scale: [M, D]; z[i] was drawn from component i, which is left out of the
    mixture at z[i] (a leave-one-out estimate: the self term biases small sets upward).
    """
    m = len(z)
    picks = np.arange(m) if m <= num_samples else rng.choice(m, num_samples, replace=False)
    loc_t, scale_t = loc.T[None], scale.T[None]                          # [1, D, M]
    log_norm = -np.log(scale_t) - 0.5 * np.log(2 * np.pi)
    total = np.zeros(z.shape[1])
    for s in range(0, len(picks), chunk):
        rows = picks[s:s + chunk]
        logq = -0.5 * ((z[rows, :, None] - loc_t) / scale_t) ** 2 + log_norm  # [c, D, M]
        logq[np.arange(len(rows)), :, rows] = -np.inf
        peak = logq.max(axis=2, keepdims=True)
        lse = np.log(np.exp(logq - peak).sum(axis=2)) + peak[..., 0]
        total -= (lse - np.log(m - 1)).sum(0)
    return total / len(picks)


def mig_chen(encoder, data, seed=0, num_points=10000, num_samples=10000, exclude=("shape",),
             encode_batch=ENCODE_BATCH):
    """MIG as Chen et al. (2018) estimate it: from the entropies of q(z_j|x), not histograms.

    One z ~ q(z|x_n) is drawn per point; H(z_j) is estimated against the mixture
    q(z_j) = mean_n q(z_j|x_n) over all points, and H(z_j | y_k) as the p(y_k)-weighted
    mean of the same estimate within each class of y_k. Then
    I(z_j; y_k) = max(H(z_j) - H(z_j | y_k), 0), normalized by log |y_k| (the entropy of
    the uniform factor), and MIG = mean_k of the gap between the two largest over j.

    Differences from Chen et al.'s code: it uses the whole dSprites grid (737,280 points);
    here `num_points` random grid points, and each entropy uses at most `num_samples` of
    them (all of a class) with the point's own component left out of the mixture. The
    factors named in `exclude` are skipped: Chen et al. leave out dSprites' shape.

    Args:
        encoder: x -> tfd.Distribution (batch [B], event [D]) or (loc, scale) [B, D].
        num_points: points drawn from `data`. Default value: 10000.
        num_samples: samples per entropy estimate. Default value: 10000 (Chen et al.).
        exclude: factor names left out. Default value: ("shape",).

    Returns:
        dict: "mig_chen", "mig_chen_per_factor" [K'], "mutual_info" [D, K'] nats,
        "factors" (the names used).
    """
    data = check_ground_truth(data)
    check_count("num_points", num_points, 4, "entropy estimates need points")
    rng = np.random.default_rng(seed)
    loc, scale, factors = sample_codes(encoder, data, num_points, rng, with_scale=True,
                                       encode_batch=encode_batch)
    scale = np.maximum(scale, 1e-8)
    z = loc + scale * rng.normal(size=loc.shape)

    def entropy(idx):
        return _entropies(z[idx], loc[idx], scale[idx], num_samples, rng) \
            if len(idx) > 1 else None

    names = list(data.factor_names) or [str(k) for k in range(data.num_factors)]
    used = [k for k, n in enumerate(names) if n not in exclude]
    marginal = entropy(np.arange(num_points))
    mi = []
    for k in used:
        cond = 0.0
        for v in np.unique(factors[:, k]):
            idx = np.nonzero(factors[:, k] == v)[0]
            h = entropy(idx)
            if h is None:
                raise ValueError(f"factor {names[k]!r} = {v} occurs once in {num_points} "
                                 f"points; increase num_points.")
            cond = cond + len(idx) / num_points * h
        mi.append(np.maximum(marginal - cond, 0.0))
    mi = np.array(mi).T                                              # [D, K']
    top = np.sort(mi, axis=0)[::-1] / np.log(np.array(data.factor_sizes)[used])
    per_factor = top[0] - top[1]
    return {"mig_chen": float(per_factor.mean()), "mig_chen_per_factor": per_factor,
            "mutual_info": mi, "factors": [names[k] for k in used]}


# ---------------------------------------------------------------------------- FactorVAE

def _votes(encoder, data, rng, num_votes, batch_size, global_std, active, encode_batch):
    """int64 [K, D]: votes[k, d] counts the batches with factor k fixed whose code dim d
    (among the active ones) has the least variance relative to its global variance."""
    k_all, d = data.num_factors, len(global_std)
    votes = np.zeros((k_all, d), np.int64)
    active_idx = np.nonzero(active)[0]
    group = max(1, encode_batch * 16 // batch_size)  # votes per encoder pass
    for start in range(0, num_votes, group):
        g = min(group, num_votes - start)
        fixed = rng.integers(0, k_all, g)
        factors = data.sample_factors(g * batch_size, rng).reshape(g, batch_size, k_all)
        factors[np.arange(g), :, fixed] = factors[np.arange(g), :1, fixed]
        x = data.sample_observations_from_factors(factors.reshape(g * batch_size, k_all), rng)
        codes = encode(encoder, x, encode_batch=encode_batch).reshape(g, batch_size, d)
        local = codes.var(axis=1, ddof=1)[:, active] / global_std[active] ** 2
        np.add.at(votes, (fixed, active_idx[np.argmin(local, axis=1)]), 1)
    return votes


def factor_vae_score(encoder, data, seed=0, batch_size=64, num_train=10000, num_eval=5000,
                     num_variance_estimate=10000, prune_threshold=0.05,
                     encode_batch=ENCODE_BATCH):
    """The FactorVAE score (Kim & Mnih 2018): accuracy of a majority-vote classifier.

    Each vote fixes one random factor across a batch of `batch_size` draws, divides each
    code dim's variance in the batch by its global variance, and votes for the dim with
    the smallest ratio. Dims whose global standard deviation is below `prune_threshold`
    (collapsed to the prior) never vote. The classifier maps each dim to the factor it
    got most training votes for; the score is its accuracy on the evaluation votes.
    A code with no active dims scores 0, as disentanglement_lib.

    Args:
        batch_size: draws per vote. Default value: 64.
        num_train, num_eval: votes. Default values: 10000, 5000.
        num_variance_estimate: draws for the global variances. Default value: 10000.
        prune_threshold: minimum global std of an active dim. Default value: 0.05.

    Returns:
        dict: "factor_vae_score" (= "eval_accuracy"), "train_accuracy", "num_active_dims".
    """
    data = check_ground_truth(data)
    check_count("batch_size", batch_size, 2, "each vote needs a variance within a batch")
    check_count("num_train", num_train, 1, "the classifier needs training votes")
    check_count("num_eval", num_eval, 1, "the score needs evaluation votes")
    check_count("num_variance_estimate", num_variance_estimate, 2, "a variance needs points")
    rng = np.random.default_rng(seed)
    codes = encode(encoder, data.sample_observations(num_variance_estimate, rng),
                    encode_batch=encode_batch)
    global_std = codes.std(axis=0, ddof=1)
    active = global_std >= prune_threshold
    if not active.any():
        return {"factor_vae_score": 0.0, "train_accuracy": 0.0, "eval_accuracy": 0.0,
                "num_active_dims": 0}
    args = (batch_size, global_std, active, encode_batch)
    train = _votes(encoder, data, rng, num_train, *args)
    classifier = np.argmax(train, axis=0)                      # [D]: the factor of each dim
    train_acc = train[classifier, np.arange(len(classifier))].sum() / train.sum()
    test = _votes(encoder, data, rng, num_eval, *args)
    eval_acc = test[classifier, np.arange(len(classifier))].sum() / test.sum()
    return {"factor_vae_score": float(eval_acc), "train_accuracy": float(train_acc),
            "eval_accuracy": float(eval_acc), "num_active_dims": int(active.sum())}


def evaluate_all(encoder, data, seed=0, with_chen=None, **overrides):
    """Every metric's headline scalars in one dict (for TensorBoard and metadata).

    `with_chen` runs `mig_chen` (default: when the encoder returns a scale). `overrides`
    maps a metric name to keyword arguments, e.g. dci={"num_train": 1000}.
    """
    data = check_ground_truth(data)
    out = {}
    for name, fn, keys in (("mig", mig, ("mig",)),
                           ("factor_vae_score", factor_vae_score, ("factor_vae_score",)),
                           ("dci", dci, ("disentanglement", "completeness",
                                         "informativeness_test")),
                           ("sap", sap, ("sap",))):
        result = fn(encoder, data, seed=seed, **overrides.get(name, {}))
        out.update({(k if k.startswith(name[:3]) else f"{name}_{k}"): float(result[k])
                    for k in keys})
    if with_chen is None:
        probe = loc_scale(encoder(data.sample_observations(2, np.random.default_rng(seed))))
        with_chen = probe[1] is not None
    if with_chen:
        out["mig_chen"] = mig_chen(encoder, data, seed=seed,
                                   **overrides.get("mig_chen", {}))["mig_chen"]
    return out
