"""Posterior heads q(z|x): a layer from encoder features h [B, F] to a tfd.Distribution.

Each file registers one head in `tfvae.registry.POSTERIORS`; importing this package
imports them all.
"""

import importlib
import pkgutil

from tfvae.posteriors.base import Posterior

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Posterior"]
