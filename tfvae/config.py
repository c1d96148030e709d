"""The train app's run configuration: one frozen dataclass, TOML presets, flags on top.

```none
value(key) = the command-line flag          if it was given
           = the preset's key               if --config apps/<preset>.toml has it
           = the field default below        otherwise
```
A preset is a flat TOML table whose keys are the flag names with '-' replaced by '_'
(`latent_dim = 16`, `jit = false`); a model's own flags (its `add_arguments` hook) are
valid keys too. Unknown keys are errors, never silently ignored.

The run *identity* is every field that changes what is trained (data, model, optimizer,
seed, steps). The default run name is derived from it, so re-running the same command finds
the same run directory and resumes it; a run directory started with a different identity
is refused rather than silently mixed.

This module does no TensorFlow work; the apps validate with it before building anything.
"""

import dataclasses
import hashlib
import json
import numbers
import tomllib

#: where each default came from is part of the help text; flags and preset keys derive
#: from the field names (`latent_dim` -> `--latent-dim`, key `latent_dim`).
_NOT_IDENTITY = ("epochs", "run_name", "logdir", "export_dir", "tensorboard", "tensorboard_port",
                 "fresh", "verbose", "jit", "steps_per_execution", "checkpoint_every_steps",
                 "keep_checkpoints", "export", "export_iwae_samples", "test_limit", "dry_run")

BINARIZE = ("static", "dynamic", "none")
NORMAL_SCALES = ("fixed", "per_pixel", "heteroscedastic")
VERBOSITY = (0, 1, 2)


class ConfigError(ValueError):
    """A preset or a setting is invalid; the message is one line and names the key."""


def _field(default, help, **argparse_kwargs):  # noqa: A002  (argparse's own word)
    return dataclasses.field(default=default,
                             metadata={"help": help, "argparse": argparse_kwargs})


def flag_name(key):
    """`latent_dim` -> `--latent-dim`."""
    return "--" + key.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything `python -m tfvae.apps.train` needs, with the reason for each default."""

    # -- data
    dataset: str = _field("fashion_mnist", "dataset name (tfvae.data.DATASETS)")
    binarize: str | None = _field(
        None, "static: threshold pixels at 0.5 once (FMNIST-bin, the benchmark protocol); "
        "dynamic: a fresh Bernoulli draw per epoch; none: grey levels. Default: static for "
        "the Bernoulli decoder (its likelihood is only a density on {0,1}), none otherwise",
        choices=BINARIZE)
    limit: int | None = _field(None, "train on the first N training images only", type=int)
    test_limit: int | None = _field(None, "validate and test on the first N test images only",
                                    type=int)
    # -- model
    model: str = _field("vae", "model name (tfvae.registry.MODELS); each model may add "
                        "its own flags, listed by `--model NAME --help`")
    posterior: str = _field("full_covariance", "posterior head (tfvae.registry.POSTERIORS)")
    likelihood: str = _field("bernoulli", "decoder likelihood (tfvae.registry.LIKELIHOODS)")
    likelihood_scale: str | None = _field(
        None, "normal likelihood only: fixed sigma, one learned sigma per pixel, or a sigma "
        "per pixel and image (default: fixed)", choices=NORMAL_SCALES)
    likelihood_sigma: float | None = _field(
        None, "normal likelihood only: the fixed sigma, or the initial learned one "
        "(default: 1.0)", type=float)
    architecture: str = _field("mlp", "encoder/decoder torsos (tfvae.registry.ARCHITECTURES)")
    # The benchmark protocol's 784-512-256 MLP; None lets the architecture pick its own.
    hidden_units: tuple | None = _field(
        None, "encoder widths, mirrored by the decoder (default: the architecture's, "
        "512 256 for mlp)", type=int, nargs="+")
    # 32 dims: the benchmark protocol's latent size; enough for Fashion-MNIST's detail.
    latent_dim: int = _field(32, "number of latent dimensions D", type=int)
    beta: float = _field(1.0, "weight of the KL term (1 = the ELBO)", type=float)
    num_samples: int = _field(1, "posterior samples per example in the training ELBO",
                              type=int)
    kl: str = _field("auto", "KL estimator: analytic when TFP has it (auto), analytic, or "
                     "Monte Carlo (mc)", choices=("auto", "analytic", "mc"))
    objective: str = _field("elbo", "training objective: the ELBO, or the importance-weighted "
                            "bound with k = --num-samples (Burda et al.)",
                            choices=("elbo", "iwae"))
    # -- optimization
    epochs: int = _field(10, "total epochs (a resumed run trains only the missing ones)",
                         type=int)
    batch_size: int = _field(128, "examples per step", type=int)
    learning_rate: float = _field(1e-3, "Adam learning rate", type=float)
    steps_per_epoch: int | None = _field(
        None, "cap the steps of each epoch (default: one pass over the training set)",
        type=int)
    seed: int = _field(0, "seeds data order, initialization and the model's sampling",
                       type=int)
    # XLA bought ~1.4x on this stack (DESIGN.md); --no-jit for models XLA cannot compile.
    jit: bool = _field(True, "XLA-compile the train step", action="BooleanOptionalAction")
    # Keras returns to Python after every step unless told otherwise; on 2 cores that
    # round trip cost 4-40% of the FMNIST step (benchmarks/profile_step.py, noisy).
    steps_per_execution: int = _field(
        16, "train steps per call into the compiled step loop (fewer Python round trips; "
        "step-level callbacks then run every N steps)", type=int)
    # -- outputs
    run_name: str | None = _field(
        None, "run directory name under --logdir and --export-dir (default: derived from "
        "the settings, so the same command resumes the same run)")
    logdir: str = _field("runs", "root of TensorBoard logs and checkpoints")
    export_dir: str = _field("saved_models", "root of the SavedModel exports")
    checkpoint_every_steps: int | None = _field(
        None, "also checkpoint every N optimizer steps (default: only at epoch ends)",
        type=int)
    keep_checkpoints: int = _field(3, "checkpoints kept on disk", type=int)
    export: bool = _field(True, "write the SavedModel at the end",
                          action="BooleanOptionalAction")
    # k = 100 keeps one exported log_likelihood call cheap (100 decoder passes per image);
    # use tfvae.apps.evaluate (k = 1000+) for reported numbers.
    export_iwae_samples: int = _field(
        100, "importance samples k of the exported log_likelihood signature", type=int)
    tensorboard: bool = _field(False, "serve TensorBoard on 127.0.0.1 while training (and "
                               "after it, until Ctrl-C)", action="store_true")
    tensorboard_port: int | None = _field(None, "TensorBoard port (default: a free one)",
                                          type=int)
    fresh: bool = _field(False, "delete the run's checkpoints and logs and start over",
                         action="store_true")
    verbose: int = _field(1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch",
                          type=int, choices=VERBOSITY)
    dry_run: bool = _field(False, "print the resolved configuration and exit",
                           action="store_true")

    # ------------------------------------------------------------------ derived values

    @property
    def resolved_binarize(self):
        """"static"/"dynamic", or None for grey levels (tfvae.data.load's convention)."""
        value = self.binarize or ("static" if self.likelihood == "bernoulli" else "none")
        return None if value == "none" else value

    def posterior_spec(self):
        return self.posterior

    def likelihood_spec(self):
        """The likelihood as tfvae.VAE takes it: a name, or a {"name": ..., **kwargs} dict."""
        options = {k: v for k, v in (("scale", self.likelihood_scale),
                                     ("sigma", self.likelihood_sigma)) if v is not None}
        return {"name": self.likelihood, **options} if options else self.likelihood

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Checks every setting that needs no TensorFlow; returns self.

        Raises:
            ConfigError: naming the flag, the constraint and the value received.
        """
        for key in ("latent_dim", "epochs", "batch_size", "num_samples", "keep_checkpoints",
                    "export_iwae_samples", "steps_per_execution"):
            _check_int(key, getattr(self, key), minimum=1)
        for key in ("limit", "test_limit", "steps_per_epoch", "checkpoint_every_steps"):
            if getattr(self, key) is not None:
                _check_int(key, getattr(self, key), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if self.tensorboard_port is not None:
            _check_int("tensorboard_port", self.tensorboard_port, minimum=1, maximum=65535)
        if self.hidden_units is not None:
            if not self.hidden_units:
                raise ConfigError("`--hidden-units` needs at least one width; got none.")
            for unit in self.hidden_units:
                _check_int("hidden_units", unit, minimum=1)
        for key in ("learning_rate", "beta", "likelihood_sigma"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
                raise ConfigError(f"`{flag_name(key)}` must be a number; got {value!r}.")
            if key == "beta" and value < 0 or key != "beta" and value <= 0:
                bound = "non-negative" if key == "beta" else "positive"
                raise ConfigError(f"`{flag_name(key)}` must be {bound}; got {value!r}.")
        if self.likelihood != "normal":
            for key in ("likelihood_scale", "likelihood_sigma"):
                if getattr(self, key) is not None:
                    raise ConfigError(f"`{flag_name(key)}` applies to the normal likelihood "
                                      f"only; got --likelihood {self.likelihood}.")
        if self.run_name is not None and (not self.run_name or self.run_name in (".", "..")
                                          or "/" in self.run_name or "\\" in self.run_name):
            raise ConfigError(f"`--run-name` must be a plain directory name; got "
                              f"{self.run_name!r}.")
        return self

    # ------------------------------------------------------------------ identity, names

    def identity(self, model_kwargs=None):
        """The settings that define what is trained (everything but outputs and length)."""
        ident = {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}
        ident["binarize"] = self.resolved_binarize
        ident["model_kwargs"] = {k: jsonable(v) for k, v in sorted((model_kwargs or {}).items())}
        return ident

    def default_run_name(self, model_kwargs=None):
        """`<model>-<dataset>-<likelihood>-z<D>-<6 hex of the identity>`.

        The same settings give the same name, so re-running a command resumes its run.
        """
        digest = hashlib.sha256(json.dumps(self.identity(model_kwargs), sort_keys=True,
                                           default=str).encode()).hexdigest()[:6]
        return f"{self.model}-{self.dataset}-{self.likelihood}-z{self.latent_dim}-{digest}"

    def to_dict(self):
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def keys(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values):
        """Builds a config from {key: value}; keys that are not fields are ignored."""
        kwargs = {k: values[k] for k in cls.keys() if k in values and values[k] is not None}
        if kwargs.get("hidden_units") is not None:
            kwargs["hidden_units"] = tuple(kwargs["hidden_units"])
        return cls(**kwargs)

    @classmethod
    def add_arguments(cls, parser):
        """Adds one flag per field; every default is the field's."""
        import argparse
        for f in dataclasses.fields(cls):
            kwargs = dict(f.metadata["argparse"])
            if kwargs.get("action") == "BooleanOptionalAction":
                kwargs["action"] = argparse.BooleanOptionalAction
            default = f.default
            help_text = f.metadata["help"]
            if default is not None and kwargs.get("action") not in ("store_true",):
                help_text += f" (default: {_show(default)})"
            parser.add_argument(flag_name(f.name), dest=f.name, default=default,
                                help=help_text, **kwargs)


def _check_int(key, value, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"`{flag_name(key)}` must be an int; got {value!r}.")
    if minimum is not None and value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ConfigError(f"`{flag_name(key)}` must be {what}; got {value!r}.")
    if maximum is not None and value > maximum:
        raise ConfigError(f"`{flag_name(key)}` must be at most {maximum}; got {value!r}.")


def jsonable(value):
    """`value` with tuples as lists and unknown objects as their repr: JSON-able."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return repr(value)


def _show(value):
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value)


def load_toml(path):
    """Reads a flat TOML preset into a dict.

    Raises:
        ConfigError: the file is missing, unreadable, not valid TOML, or has a nested table.
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found.") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory.") from None
    except PermissionError:
        raise ConfigError(f"config file {str(path)!r} is not readable.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {e}.") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"config file {str(path)!r}: key {key!r} is a table; presets "
                              "are flat key = value lists (flag names with '_').")
    return data
