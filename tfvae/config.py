"""The train app's run settings: one frozen dataclass of everything that is not the model.

```none
value(key) = --set key=VALUE or the command-line flag   if given
           = the preset's top-level key                 if --config PRESET.toml has it
           = the field default below                    otherwise
```
The model's own arguments live in the preset's tables (`tfvae.recipe`). The run *identity*
is every setting that changes what is trained; the default run name derives from it, so
re-running the same command resumes the same run, and a run directory started with a
different identity is refused rather than silently mixed.

This module does no TensorFlow work and parses no command line; the apps do.
"""

import dataclasses
import numbers
import tomllib

#: where each default came from is part of the help text; flags and preset keys derive
#: from the field names (`latent_dim` -> `--latent-dim`, key `latent_dim`).
_NOT_IDENTITY = ("epochs", "run_name", "logdir", "export_dir", "tensorboard", "tensorboard_port",
                 "fresh", "verbose", "jit", "steps_per_execution", "checkpoint_every_steps",
                 "keep_checkpoints", "export", "export_iwae_samples", "test_limit", "dry_run",
                 "strategy", "devices", "disentanglement")

BINARIZE = ("static", "dynamic", "none")
LR_SCHEDULES = ("constant", "cosine", "warmup_cosine")
VERBOSITY = (0, 1, 2)
STRATEGIES = ("default", "mirrored", "multi_worker")  # tfvae.distribute.STRATEGIES


class ConfigError(ValueError):
    """A preset or a setting is invalid; the message is one line and names the key."""


def _field(default, help, kind=str, choices=None):  # noqa: A002
    """A setting: its default, help text, value kind (str, int, float, bool) and choices."""
    return dataclasses.field(default=default, metadata={"help": help, "kind": kind,
                                                        "choices": choices})


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
    limit: int | None = _field(None, "train on the first N training images only", kind=int)
    test_limit: int | None = _field(None, "test on the first N test images only",
                                    kind=int)
    # -- optimization
    epochs: int = _field(10, "total epochs (a resumed run trains only the missing ones)",
                         kind=int)
    batch_size: int = _field(128, "examples per step", kind=int)
    learning_rate: float = _field(1e-3, "Adam learning rate", kind=float)
    lr_schedule: str = _field(
        "constant", "learning-rate schedule over the run's optimizer steps: constant; cosine "
        "(decays to 0 at the last step of --epochs); warmup_cosine (linear from 0 over "
        "--lr-warmup-steps, then cosine)", choices=LR_SCHEDULES)
    lr_warmup_steps: int = _field(1000, "warm-up steps of --lr-schedule warmup_cosine",
                                  kind=int)
    # The decoder learns to use z before the rate is charged in full; what it buys in test
    # NLL is measured in README.md, 'Posterior families'.
    kl_warmup: float | None = _field(
        None, "KL warm-up: the KL weight rises linearly from 0 to beta over this fraction of "
        "the run's optimizer steps (0: off). Default: 0.5 for the models whose objective is "
        "the ELBO with a KL weight (vae, beta_vae), off for the others", kind=float)
    clipnorm: float | None = _field(
        None, "clip the model's gradient to this global norm (all variables together; "
        "default: no clipping)", kind=float)
    validation_split: int | None = _field(
        None, "hold out N training images (a seeded choice) to validate on each epoch; the "
        "test split is evaluated only at the end. Default: 5000, or a tenth of the training "
        "split when it has fewer than 50,000 images; 0 validates on the test split",
        kind=int)
    early_stopping: int = _field(
        0, "stop after N epochs without a better validation ELBO (validation loss for "
        "models without an ELBO) and end with the best epoch's weights; 0: off", kind=int)
    steps_per_epoch: int | None = _field(
        None, "cap the steps of each epoch (default: one pass over the training set)",
        kind=int)
    seed: int = _field(0, "seeds data order, initialization and the model's sampling",
                       kind=int)
    # XLA bought ~1.4x on this stack (DESIGN.md); --no-jit for models XLA cannot compile.
    # On, the model's compile decides (jit_compile="auto"): convolutions on a CPU-only host
    # take the graph step, faster there (benchmarks/conv_jit.py).
    jit: bool = _field(True, "XLA-compile the train step where it is faster (not for "
                       "convolutions on a CPU-only host)", kind=bool)
    # Keras returns to Python after every step unless told otherwise; on 2 cores that
    # round trip cost 4-40% of the FMNIST step (benchmarks/profile_step.py, noisy).
    steps_per_execution: int = _field(
        16, "train steps per call into the compiled step loop (fewer Python round trips; "
        "step-level callbacks then run every N steps)", kind=int)
    # -- distribution (tfvae.distribute); the global batch is --batch-size
    strategy: str = _field("default", "default: one device; mirrored: one replica per GPU "
                           "(or per logical CPU with --devices); multi_worker: one per "
                           "worker process, from TF_CONFIG",
                           choices=STRATEGIES)
    devices: int | None = _field(None, "replicas of --strategy mirrored: the first N GPUs, "
                                 "or N logical devices of a CPU-only host", kind=int)
    disentanglement: str = _field(
        "quick", "on a dataset with ground-truth factors (dsprites), score disentanglement "
        "at the end of the run (MIG, FactorVAE score, DCI, SAP; TensorBoard and "
        "metadata.json): quick (reduced sample sizes, minutes), full (disentanglement_lib's, "
        "~25 min on 2 cores) or off", choices=("off", "quick", "full"))
    # -- outputs
    run_name: str | None = _field(
        None, "run directory name under --logdir and --export-dir (default: derived from "
        "the settings, so the same command resumes the same run)")
    logdir: str = _field("runs", "root of TensorBoard logs and checkpoints")
    export_dir: str = _field("saved_models", "root of the SavedModel exports")
    checkpoint_every_steps: int | None = _field(
        None, "also checkpoint every N optimizer steps (default: only at epoch ends)",
        kind=int)
    keep_checkpoints: int = _field(3, "checkpoints kept on disk", kind=int)
    export: bool = _field(True, "write the SavedModel at the end",
                          kind=bool)
    # k = 100 keeps one exported log_likelihood call cheap (100 decoder passes per image);
    # use tfvae.apps.evaluate (k = 1000+) for reported numbers.
    export_iwae_samples: int = _field(
        100, "importance samples k of the exported log_likelihood signature", kind=int)
    tensorboard: bool = _field(False, "serve TensorBoard on 127.0.0.1 while training (and "
                               "after it, until Ctrl-C)", kind=bool)
    tensorboard_port: int | None = _field(None, "TensorBoard port (default: a free one)",
                                          kind=int)
    fresh: bool = _field(False, "delete the run's checkpoints and logs and start over",
                         kind=bool)
    verbose: int = _field(1, "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch",
                          kind=int, choices=VERBOSITY)
    dry_run: bool = _field(False, "print the resolved configuration and exit",
                           kind=bool)

    # ------------------------------------------------------------------ derived values

    def resolved_binarize(self, likelihood):
        """"static"/"dynamic", or None for grey levels (tfvae.data.load's convention):
        static by default for the Bernoulli likelihood (a density only on {0, 1})."""
        value = self.binarize or ("static" if likelihood == "bernoulli" else "none")
        return None if value == "none" else value

    # ------------------------------------------------------------------ validation

    def validate(self):
        """Checks every setting that needs no TensorFlow; returns self.

        Raises:
            ConfigError: naming the flag, the constraint and the value received.
        """
        for key in ("epochs", "batch_size", "keep_checkpoints",
                    "export_iwae_samples", "steps_per_execution"):
            _check_int(key, getattr(self, key), minimum=1)
        for key in ("limit", "test_limit", "steps_per_epoch", "checkpoint_every_steps",
                    "devices"):
            if getattr(self, key) is not None:
                _check_int(key, getattr(self, key), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        _check_int("lr_warmup_steps", self.lr_warmup_steps, minimum=0)
        _check_int("early_stopping", self.early_stopping, minimum=0)
        if self.validation_split is not None:
            _check_int("validation_split", self.validation_split, minimum=0)
        if self.disentanglement not in ("off", "quick", "full"):
            raise ConfigError(f"`--disentanglement` must be one of ['off', 'quick', 'full']; "
                              f"got {self.disentanglement!r}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"`--lr-schedule` must be one of {list(LR_SCHEDULES)}; got "
                              f"{self.lr_schedule!r}.")
        if self.kl_warmup is not None and (isinstance(self.kl_warmup, bool) or not isinstance(
                self.kl_warmup, numbers.Real) or not 0 <= self.kl_warmup <= 1):
            raise ConfigError(f"`--kl-warmup` must be a fraction of the run in [0, 1]; got "
                              f"{self.kl_warmup!r}.")
        if self.clipnorm is not None and (isinstance(self.clipnorm, bool) or not isinstance(
                self.clipnorm, numbers.Real) or not 0 < self.clipnorm < float("inf")):
            raise ConfigError(f"`--clipnorm` must be a positive number; got {self.clipnorm!r}.")
        if self.early_stopping and self.validation_split == 0:
            raise ConfigError("`--early-stopping` needs a validation split: the test split "
                              "must not choose the model; drop `--validation-split 0`.")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"`--strategy` must be one of {list(STRATEGIES)}; got "
                              f"{self.strategy!r}.")
        if self.tensorboard_port is not None:
            _check_int("tensorboard_port", self.tensorboard_port, minimum=1, maximum=65535)
        value = self.learning_rate
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
                or value != value or value == float("inf"):
            raise ConfigError(f"`--learning-rate` must be positive; got {value!r}.")
        if self.run_name is not None and (not self.run_name or self.run_name in (".", "..")
                                          or "/" in self.run_name or "\\" in self.run_name):
            raise ConfigError(f"`--run-name` must be a plain directory name; got "
                              f"{self.run_name!r}.")
        return self

    # ------------------------------------------------------------------ identity, names

    def identity(self):
        """The run settings that define what is trained (not outputs or length)."""
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}

    def to_dict(self):
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def keys(cls):
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def fields(cls):
        """(name, default, help, kind, choices) of every setting, for the apps' flags."""
        return [(f.name, f.default, f.metadata["help"], f.metadata["kind"],
                 f.metadata.get("choices")) for f in dataclasses.fields(cls)]


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


def load_toml(path):
    """Reads a TOML preset into a dict (see `tfvae.recipe` for its layout).

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML.
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
    return data
