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


def add(group, name, default, help_text, kind=None, choices=None, dest=None):
    """Adds the flag for setting `name` to `group` (an argparse parser or group)."""
    kind = kind or _kind(default)
    if kind is None and name.endswith("_units"):
        kind = list
    text = help_text or ""
    if choices:
        text += f" (one of {', '.join(map(str, choices))})"
    if default is not None and default != () and "Default value" not in text \
            and not callable(default) and not isinstance(default, type):
        text += f" (default: {_show(default)})"
    kwargs = {"dest": dest or name, "default": None, "help": text.replace("%", "%%"),
              "metavar": name.upper()}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        del kwargs["metavar"]
    elif kind is list:
        kwargs.update(nargs="+", type=parse_value)
    else:
        kwargs["type"] = kind if kind in (int, float, str) else parse_value
        if choices:
            kwargs["choices"] = list(choices)
    group.add_argument(flag_name(name), **kwargs)
