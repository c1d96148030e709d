"""Shared plumbing of the objective-family models (beta_vae, capacity, beta_tcvae, ...).

Not a model: no registration. Each family model is a thin `VAE` subclass that fixes its
objective terms from a few hyperparameters and exposes them as train-app flags.
"""

from tfvae._tf import tf


def add_flag(parser, flag, **kwargs):
    """`parser.add_argument(flag, default=None, **kwargs)` unless another model added it.

    Several family models share a flag with the same meaning (`--tc-weight`: the weight of
    the total-correlation term in beta-TCVAE and FactorVAE), so a parser that collects every
    model's flags gets each one once.
    """
    if flag in getattr(parser, "_option_string_actions", {}):
        return
    parser.add_argument(flag, default=None, **kwargs)


def kwargs_from(args, names):
    """{name: getattr(args, name)} for the names whose flag was set (is not None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def reject_terms(kwargs, model_name):
    """Family models derive their terms; a `terms` or non-ELBO `objective` would be ignored."""
    if "terms" in kwargs:
        raise TypeError(f"Model {model_name!r} sets its own objective terms from its "
                        "hyperparameters; `terms` cannot be passed (use tfvae.VAE(terms=...) "
                        "for a custom objective).")
    if kwargs.get("objective", "elbo") != "elbo":
        raise ValueError(f"Model {model_name!r} defines its own objective; `objective` must "
                         f"be 'elbo' (the default); got {kwargs['objective']!r}.")


def reject_beta(kwargs, model_name, instead):
    """Models whose rate weight is not `beta` refuse a `beta` other than the default 1."""
    beta = kwargs.get("beta", 1.0)
    if beta != 1.0:
        raise ValueError(f"`beta` does not apply to model {model_name!r} ({instead}); got "
                         f"{beta!r}.")


def resolve_seed(seed):
    """The model's seed: `seed`, or one drawn from TensorFlow's global seed, as VAE does.

    Resolved before the VAE constructor so the terms' own generators (prior samples for MMD,
    permutations for FactorVAE) derive from the same seed.
    """
    if seed is None:
        seed = int(tf.random.uniform([], maxval=2**31 - 1, dtype=tf.int64))
    return int(seed)


def config_without_terms(model):
    """`VAE.get_config()` minus the derived `terms` (rebuilt from the hyperparameters)."""
    from tfvae.models.vae import VAE  # here, not at import: vae.py imports the packages
    config = VAE.get_config(model)
    config.pop("terms", None)
    return config
