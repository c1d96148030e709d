"""Name -> class registries for posteriors, likelihoods, priors, objective terms, models.

A new component is one file that decorates its class with `@REGISTRY.register("name")`;
unknown names raise a ValueError listing the valid ones. `build` makes an instance from a
name or a {"name": ..., **arguments} spec (see `tfvae.components`).
"""

import difflib


class Registry:
    """A name -> class mapping with loud conflicts and helpful misses.

    Args:
        kind: what the registry holds, used in error messages ("posterior").
    """

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name):
        def decorator(cls):
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered to "
                                 f"{self._entries[name].__name__}.")
            self._entries[name] = cls
            cls.registry_name = name
            return cls
        return decorator

    def unregister(self, name):
        """Removes `name` (for tests that register a temporary component)."""
        self._entries.pop(name, None)

    def names(self):
        return sorted(self._entries)

    def get(self, name):
        """Returns the class registered under `name`.

        Raises:
            TypeError: if `name` is not a string.
            ValueError: if nothing is registered under `name`; the message lists the options.
        """
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string; got {type(name).__name__} {name!r}.")
        if name not in self._entries:
            hint = difflib.get_close_matches(name, self.names(), n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"Unknown {self.kind} {name!r}; expected one of "
                             f"{self.names()}{did_you_mean}.")
        return self._entries[name]

    def build(self, spec, context=None):
        """An instance from a name, a spec dict or an instance; see `tfvae.components.build`."""
        from tfvae import components  # noqa: PLC0415  (components imports schedules only)
        return components.build(self, spec, context)

    def __contains__(self, name):
        return name in self._entries


POSTERIORS = Registry("posterior")
LIKELIHOODS = Registry("likelihood")
PRIORS = Registry("prior")
TERMS = Registry("objective term")
MODELS = Registry("model")
ARCHITECTURES = Registry("architecture")
