"""Objective terms: each maps a ForwardPass to nats per example [B] (or a batch scalar).

The model multiplies each term by its weight and sums; see `tfvae.objectives.base.Term`.
"""

import importlib
import pkgutil

from tfvae.objectives.base import Term

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Term"]
