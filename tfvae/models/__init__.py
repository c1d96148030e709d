"""Model families. Each file registers its model in `tfvae.registry.MODELS`."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
