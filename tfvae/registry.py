"""Name -> class registries for posteriors, likelihoods, priors, objective terms, models.

A new component is one file that decorates its class with `@REGISTRY.register("name")`;
unknown names raise a ValueError listing the valid ones. `build` makes an instance from a
name or a {"name": ..., **arguments} spec (see `tfvae.components`).
"""

import difflib

#: "no", "loading" or "yes": whether the built-in components are registered yet
_builtins = "no"


def _load_builtins():
    """Imports the built-in components once, the first time any registry is asked for a
    name (`import tfvae` is lazy). A module that queries a registry while they load sees
    the ones registered so far."""
    global _builtins
    if _builtins != "no":
        return
    _builtins = "loading"
    try:
        import tfvae  # noqa: PLC0415
        tfvae.load_builtins()
    except BaseException:
        _builtins = "no"
        raise
    _builtins = "yes"


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
        _load_builtins()
        return sorted(self._entries)

    def get(self, name):
        """Returns the class registered under `name`.

        Raises:
            TypeError: if `name` is not a string.
            ValueError: if nothing is registered under `name`; the message lists the options.
        """
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string; got {type(name).__name__} {name!r}.")
        _load_builtins()
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
        _load_builtins()
        return name in self._entries


def untouched():
    """True while nothing is registered: no component module, built-in or other, is
    imported yet (the apps' cold start)."""
    return not any(reg._entries for reg in ALL)


POSTERIORS = Registry("posterior")
LIKELIHOODS = Registry("likelihood")
PRIORS = Registry("prior")
TERMS = Registry("objective term")
MODELS = Registry("model")
ARCHITECTURES = Registry("architecture")
ALL = (POSTERIORS, LIKELIHOODS, PRIORS, TERMS, MODELS, ARCHITECTURES)
