"""Command-line flags derived from settings and constructor signatures.

A setting `latent_dim` with default 32 becomes `--latent-dim N` (an int); the kind of value
comes from the declared kind, else from the default: bool -> `--x/--no-x`, int, float,
str, a tuple (or a name ending in `_units`) -> one or more values, None -> a TOML literal.
Every flag's default is None, so the app can tell what was typed from what was not; the
help text shows the real default.
"""

import argparse

from tfvae.recipe import parse_value


def flag_name(name):
    """`latent_dim` -> `--latent-dim`."""
    return "--" + name.replace("_", "-")


def _kind(default):
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float, str)):
        return type(default)
    if isinstance(default, (tuple, list)):
        return list
    return None


def _show(default):
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default))
    return str(default)


#: a flag's kind as plain data (for the snapshot in `tfvae.apps._train_flags`)
_KINDS = {bool: "bool", list: "list", int: "int", float: "float", str: "str"}


def spec(name, default, help_text, kind=None, choices=None, dest=None):
    """The flag for setting `name` as plain data: {flag, dest, help, kind, choices}, with
    kind one of bool, list, int, float, str, or value (a TOML literal)."""
    kind = kind or _kind(default)
    if kind is None and name.endswith("_units"):
        kind = list
    text = help_text or ""
    if choices:
        text += f" (one of {', '.join(map(str, choices))})"
    if default is not None and default != () and "Default value" not in text \
            and not callable(default) and not isinstance(default, type):
        text += f" (default: {_show(default)})"
    return {"flag": flag_name(name), "dest": dest or name, "help": text,
            "kind": _KINDS.get(kind, "value"), "choices": list(choices) if choices else None}


def add_spec(group, flag):
    """Adds the flag described by `spec(...)` to `group` (an argparse parser or group)."""
    kwargs = {"dest": flag["dest"], "default": None, "help": flag["help"].replace("%", "%%")}
    kind = flag["kind"]
    if kind == "bool":
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["metavar"] = flag["flag"][2:].replace("-", "_").upper()
        if kind == "list":
            kwargs.update(nargs="+", type=parse_value)
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}.get(kind, parse_value)
            if flag["choices"]:
                kwargs["choices"] = list(flag["choices"])
    group.add_argument(flag["flag"], **kwargs)


def add(group, name, default, help_text, kind=None, choices=None, dest=None):
    """Adds the flag for setting `name` to `group` (an argparse parser or group)."""
    add_spec(group, spec(name, default, help_text, kind, choices, dest))
