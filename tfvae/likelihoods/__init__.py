"""Likelihood heads p(x|z): a layer from decoder outputs to a tfd.Independent over images.

Each file registers its heads in `tfvae.registry.LIKELIHOODS`.
"""

import importlib
import pkgutil

from tfvae.likelihoods.base import Likelihood

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Likelihood"]
