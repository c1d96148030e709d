"""tfvae: variational autoencoders on TensorFlow Probability and tf_keras.

```python
import tfvae
model = tfvae.VAE(latent_dim=32, posterior="full_covariance", likelihood="bernoulli")
```

The package imports lazily (PEP 562): `import tfvae` costs no TensorFlow import, so the
apps answer `--help` and argument errors at once; the first use of an attribute below
imports what it needs. The registries (`tfvae.registry`) import every built-in component
the first time they are asked for a name.
"""

import importlib

__version__ = "0.1.0"

#: attribute -> the module that defines it (a submodule is its own module)
_LAZY = {
    "VAE": "tfvae.models.vae",
    "AVB": "tfvae.models.avb",
    "ForwardPass": "tfvae.types",
    **{name: f"tfvae.{name}" for name in (
        "data", "evaluation", "export", "likelihoods", "objectives", "posteriors", "priors",
        "latent", "models", "callbacks", "optimizers")},
}

#: the modules that register the built-in models, posteriors, likelihoods, priors, terms
#: and architectures; `load_builtins` imports them all
BUILTINS = ("tfvae.networks", "tfvae.priors", "tfvae.posteriors", "tfvae.likelihoods",
            "tfvae.objectives", "tfvae.models", "tfvae.latent", "tfvae.callbacks")

__all__ = ["VAE", "AVB", "ForwardPass", "data", "export", "likelihoods", "objectives",
           "posteriors", "priors"]


def load_builtins():
    """Imports every module that registers a built-in component (idempotent)."""
    for name in BUILTINS:
        importlib.import_module(name)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    value = module if _LAZY[name] == f"tfvae.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
