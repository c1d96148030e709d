"""Components described by their constructors: parameters, specs and building from specs.

A component (posterior, likelihood, prior, term, model) declares its hyperparameters as
keyword arguments of `__init__`; nothing else. From that signature this module derives

- `parameters(cls)`: {name: default} of every argument a spec may set (a `**kwargs` that
  is passed on to the base class adds the base class's arguments);
- `spec_of(obj)`: {"name": registered name, **arguments}, read back from the attributes the
  constructor stored under the same names, so `build(registry, spec_of(obj))` rebuilds
  an equal component (exports and run directories round-trip through it);
- `build(registry, spec, **context)`: an instance from a name, a spec dict or an instance.
  Unknown keys are one-line errors that list the allowed ones; `context` values (the
  latent dimension, the training set's size) fill the arguments a spec left out.

Schedules (`tfvae.schedules.LinearSchedule`) are specs too: {"schedule": "linear", ...}.
"""

import inspect
import sys

#: constructor arguments that are wiring, not hyperparameters: never in specs or flags.
WIRING = frozenset({"self", "name", "validate_args", "kwargs", "args", "dtype", "trainable",
                    "dynamic"})


def parameters(cls, exclude=(), wiring=False):
    """{argument: default} of `cls.__init__`, following `**kwargs` into base classes.

    Arguments without a default map to `inspect.Parameter.empty`. Wiring arguments (name,
    validate_args, ...) are left out unless `wiring`.
    """
    out = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        for p in params.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name == "self" \
                    or (p.name in WIRING and not wiring):
                continue
            out.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return {k: v for k, v in out.items() if k not in exclude}


def argument_help(cls):
    """{argument: one-line help} from the "Args:" sections of the class docstrings."""
    out = {}
    for klass in cls.__mro__:
        doc = inspect.getdoc(klass) or ""
        if "Args:" not in doc:
            continue
        current = None
        for line in doc.split("Args:", 1)[1].splitlines():
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            text = line.strip()
            if indent <= 0 and not text.startswith(("**", "*")) and ":" not in text:
                break
            if text.startswith("*"):
                current = None
                continue
            head, _, rest = text.partition(":")
            names = [n.strip() for n in head.split(",")]
            if rest and all(n.isidentifier() for n in names) and indent <= 4:
                for n in names:
                    out.setdefault(n, rest.strip())
                current = names
            elif current:
                for n in current:
                    if out.get(n) is not None and len(out[n]) < 300:
                        out[n] += " " + text
    return out


def to_spec(value):
    """A constructor argument as plain data (tuples as lists, schedules as dicts)."""
    schedules = sys.modules.get("tfvae.schedules")  # a schedule exists only if it is imported
    if schedules is not None and isinstance(value, schedules.LinearSchedule):
        return {"schedule": "linear", **value.get_config()}
    if isinstance(value, (list, tuple)):
        return [to_spec(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_spec(v) for k, v in value.items()}
    if hasattr(value, "registry_name"):
        return spec_of(value)
    return value


def from_spec_value(value):
    """The inverse of `to_spec` for values: schedule dicts become schedules."""
    if isinstance(value, dict) and "schedule" in value:
        value = dict(value)
        from tfvae import schedules  # noqa: PLC0415  (imports TensorFlow)
        kind = value.pop("schedule")
        if kind != "linear":
            raise ValueError(f"Unknown schedule {kind!r}; expected 'linear' (keys start, end, "
                             "steps, delay).")
        allowed = set(parameters(schedules.LinearSchedule))
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"Unknown key {unknown[0]!r} in a linear schedule; allowed: "
                             f"{sorted(allowed)}.")
        return schedules.LinearSchedule(**value)
    return value


def spec_of(obj, exclude=()):
    """{"name": obj.registry_name, **the constructor arguments obj stored as attributes}."""
    spec = {"name": obj.registry_name}
    for key in parameters(type(obj), exclude=exclude):
        if hasattr(obj, key):
            spec[key] = to_spec(getattr(obj, key))
    return spec


def check_keys(cls, keys, where, exclude=(), wiring=False):
    """Raises ValueError naming the first key `cls`'s constructor does not take (wiring
    arguments such as `trainable` are accepted if `wiring`, never listed)."""
    allowed = parameters(cls, exclude=exclude)
    keys = [k for k in keys if not (wiring and k in parameters(cls, wiring=True))]
    for key in keys:
        if key not in allowed:
            raise ValueError(f"Unknown key {key!r} in {where}; allowed: {sorted(allowed)}.")


def build(registry, spec, context=None, where=None):
    """An instance from a registered name, a {"name": ..., **arguments} dict or an instance.

    Args:
        registry: the `tfvae.registry.Registry` to resolve the name in.
        spec: a name, a dict, or an already built component (returned as is).
        context: {argument: value} filled in where the component takes the argument and
            the spec does not set it (e.g. latent_dim, dataset_size).
        where: how error messages name the spec (default: "the <kind> spec").

    Raises:
        ValueError: no or unknown name, or a key the constructor does not take.
    """
    if not isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    spec = dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise ValueError(f"A {registry.kind} spec needs a 'name' (one of {registry.names()}); "
                         f"got keys {sorted(spec)}.")
    cls = registry.get(name)
    where = where or f"the {registry.kind} {name!r}"
    check_keys(cls, spec, where, wiring=True)
    accepted = parameters(cls, wiring=True)
    kwargs = {k: v for k, v in (context or {}).items() if k in accepted and k not in spec}
    kwargs.update({k: from_spec_value(v) for k, v in spec.items()})
    return cls(**kwargs)
