"""Shared command-line plumbing of the tfvae apps: one-line errors, presets, checks.

Every app's `main(argv)` runs inside `run_main`, so bad input ends the process with exit
code 2 and exactly one line on stderr (``tfvae-train: error: ...``), never a traceback:

```python
def main(argv=None):
    return _cli.run_main("tfvae-train", _main, argv)

def _main(argv):
    parser = _cli.ArgumentParser(prog="tfvae-train")       # errors raise UsageError
    ...
    args = _cli.parse_with_preset(parser, argv)            # flags > --config TOML > defaults
    with _cli.user_errors():                               # ValueError/TypeError -> exit 2
        model = build(args)
```
A preset (`--config apps/x.toml`) is a flat TOML table whose keys are the parser's
destinations (flag names with '-' replaced by '_'); values are converted by the flag's own
`type` and checked against its `choices`, so a preset can hold nothing a flag could not.

Exit codes: 0 success, 2 bad input (UsageError), 130 interrupted (Ctrl-C); anything else
is a bug and keeps its traceback.
"""

import argparse
import contextlib
import difflib
import os
import sys
import tempfile

from tfvae import config as config_lib

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def one_line(exc):
    """The first non-empty line of an exception's message (or its type name)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    line = next((l.strip() for l in text.splitlines() if l.strip()), "")
    return line or type(exc).__name__


def run_main(prog, fn, argv=None):
    """Calls `fn(argv)`; UsageError -> one stderr line and 2, Ctrl-C -> 130.

    Returns:
        the process exit code (`fn`'s return value, 0 if it returned None).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        code = fn(argv)
    except UsageError as e:
        sys.stdout.flush()
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\n{prog}: interrupted.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    return 0 if code is None else int(code)


@contextlib.contextmanager
def user_errors(prefix=""):
    """Turns ValueError/TypeError/OSError raised inside into one-line UsageErrors.

    Wrap only the setup that checks user input (building the model from flags, opening
    files), never training: a bug there should keep its traceback.
    """
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError, OSError, KeyError) as e:
        raise UsageError(prefix + one_line(e)) from e


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors raise UsageError (one line) instead of exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # `--lat` must not silently mean a flag
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def preset_keys(parser):
    """{dest: action} of every flag a preset may set (all but --help and --config)."""
    return {a.dest: a for a in parser._actions  # pylint: disable=protected-access
            if a.dest not in ("help", "config", "version") and a.option_strings}


def _is_bool_action(action):
    # pylint: disable=protected-access
    return isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                               argparse.BooleanOptionalAction))


def coerce(action, value, where):
    """Converts a TOML value the way argparse converts the flag's text; UsageError if not."""
    key = action.dest
    if _is_bool_action(action):
        if not isinstance(value, bool):
            raise UsageError(f"{where}: `{key}` must be true or false; got {value!r}.")
        return value
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if many:
        if not isinstance(value, list):
            raise UsageError(f"{where}: `{key}` must be a list (e.g. [512, 256]); got "
                             f"{value!r}.")
        if action.nargs == "+" and not value:
            raise UsageError(f"{where}: `{key}` needs at least one value.")
        return [_coerce_one(action, v, where) for v in value]
    if isinstance(value, list):
        raise UsageError(f"{where}: `{key}` takes one value; got the list {value!r}.")
    return _coerce_one(action, value, where)


def _coerce_one(action, value, where):
    key = action.dest
    if isinstance(value, (dict, list)) or (isinstance(value, bool) and action.type is not bool):
        raise UsageError(f"{where}: `{key}` got {value!r}, which the flag "
                         f"{action.option_strings[0]} does not take.")
    if action.type is None:
        if not isinstance(value, str):
            raise UsageError(f"{where}: `{key}` must be a string; got {value!r}.")
        converted = value
    else:
        try:
            # The flag's own converter on the value's text: a preset accepts exactly what
            # the command line accepts (1e-3 and 0.001 alike; 3.5 is no int).
            converted = action.type(value if isinstance(value, str) else _toml_text(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            type_name = getattr(action.type, "__name__", "valid")
            raise UsageError(f"{where}: `{key}` must be a {type_name} value; got "
                             f"{value!r}.") from None
    if action.choices is not None and converted not in action.choices:
        raise UsageError(f"{where}: `{key}` must be one of {list(action.choices)}; got "
                         f"{value!r}.")
    return converted


def _toml_text(value):
    return repr(value) if isinstance(value, float) else str(value)


def load_preset(parser, path):
    """Reads a TOML preset and checks every key and value against `parser`'s flags.

    Returns:
        {dest: converted value}.
    Raises:
        UsageError: missing or malformed file, unknown key, wrong type or choice.
    """
    try:
        data = config_lib.load_toml(path)
    except config_lib.ConfigError as e:
        raise UsageError(str(e)) from None
    actions = preset_keys(parser)
    out = {}
    for key, value in data.items():
        if key not in actions:
            hint = difflib.get_close_matches(key, list(actions), n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise UsageError(f"unknown key {key!r} in {str(path)!r}{did_you_mean}; valid "
                             f"keys are the flag names with '_': {sorted(actions)}.")
        out[key] = coerce(actions[key], value, str(path))
    return out


def parse_with_preset(parser, argv, preset=None):
    """Parses `argv`; values not given as flags come from `preset`, then the defaults.

    Args:
        parser: the full parser (with every flag a preset may set).
        argv: the command-line arguments.
        preset: {dest: value} from `load_preset`, or None.

    Returns:
        (namespace, given): the merged namespace, and the set of dests given as flags.
    """
    actions = [a for a in parser._actions if a.dest != "help"]  # pylint: disable=protected-access
    defaults = {a.dest: a.default for a in actions}
    # Parse once with every default suppressed: what is in the namespace was typed.
    for a in actions:
        a.default = argparse.SUPPRESS
    try:
        given = vars(parser.parse_args(argv))
    finally:
        for a in actions:
            a.default = defaults[a.dest]
    merged = {}
    for dest, default in defaults.items():
        if dest in given:
            merged[dest] = given[dest]
        elif preset and dest in preset:
            merged[dest] = preset[dest]
        else:
            merged[dest] = default
    return argparse.Namespace(**merged), set(given)


def check_writable_dir(path, flag):
    """Creates directory `path` if needed and proves it writable with a probe file.

    Raises:
        UsageError: naming `flag`, the path and the reason (root ignores permission bits,
            so this writes rather than trusting os.access).
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        reason = e.strerror or one_line(e)
        raise UsageError(f"`{flag}` {str(path)!r} is not a writable directory: "
                         f"{reason}.") from None
    return path
