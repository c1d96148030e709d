"""The train app's command line: run-setting flags, the model's arguments as flags, presets
and `--set PATH=VALUE`, resolved into a `TrainConfig` and a `tfvae.recipe.Recipe`."""

import difflib
import math
import numbers

import tfvae
from tfvae import components
from tfvae import config as config_lib
from tfvae import recipe as recipe_lib
from tfvae.apps import _cli
from tfvae.apps import _flags
from tfvae.registry import MODELS

PROG = "tfvae-train"
MAX_INT32, MAX_SEED = _cli.MAX_INT32, _cli.MAX_SEED
#: run settings bounded by MAX_INT32 (counts that become tensor shapes or int32 indices)
COUNTS = ("epochs", "batch_size", "limit", "test_limit", "steps_per_epoch",
          "steps_per_execution", "checkpoint_every_steps", "keep_checkpoints",
          "export_iwae_samples")
DESCRIPTION = "Train a model, log it to TensorBoard, checkpoint it, export a SavedModel."


def build_parser(model_cls):
    """Run-setting flags (TrainConfig), the model's arguments as flags (from its
    constructor's signature), component names, and `--set PATH=VALUE`."""
    parser = _cli.ArgumentParser(
        prog=PROG, description=DESCRIPTION,
        epilog="Any component argument: --set posterior.offdiag_scale=1e-2 (see README, "
               "'Presets'). Presets: apps/*.toml.")
    parser.add_argument("--config", metavar="TOML",
                        help="a preset (apps/*.toml); flags and --set override it")
    parser.add_argument("--model", metavar="NAME", choices=MODELS.names(),
                        help=f"the model recipe, one of {MODELS.names()} (default: vae); "
                             "its arguments are listed below with --model NAME --help")
    for table, registry in recipe_lib.TABLES.items():
        parser.add_argument(f"--{table}", metavar="NAME", choices=registry.names(),
                            help=f"the {table}, one of {registry.names()} (default: the "
                                 "model's); its arguments: --set " + table + ".ARG=VALUE")
    parser.add_argument("--set", metavar="PATH=VALUE", action="append", default=[],
                        help="set any setting or component argument, e.g. epochs=3, "
                             "model.latent_dim=16, posterior.offdiag_scale=1e-2, "
                             "terms.1.weight=4 (values are TOML literals)")
    run = parser.add_argument_group("run settings")
    for name, default, help_text, kind, choices in config_lib.TrainConfig.fields():
        _flags.add(run, name, default, help_text, kind=kind, choices=choices)
    model = parser.add_argument_group(f"model {model_cls.registry_name!r} "
                                      f"({model_cls.__name__}) arguments")
    helps = components.argument_help(model_cls)
    for name, default in recipe_lib.model_arguments(model_cls).items():
        _flags.add(model, name, default, helps.get(name, ""), dest=f"model.{name}")
    return parser


def parse(argv):
    """argv -> (TrainConfig, Recipe, namespace). Raises UsageError."""
    pre = _cli.ArgumentParser(prog=PROG, add_help=False)
    pre.add_argument("--config")
    pre.add_argument("--model")
    known, _ = pre.parse_known_args(argv)
    tree = {}
    if known.config is not None:
        try:
            tree = config_lib.load_toml(known.config)
        except config_lib.ConfigError as e:
            raise _cli.UsageError(str(e)) from None
    where = f"{known.config!r}" if known.config else "the settings"
    tree.setdefault("model", {})
    if not isinstance(tree["model"], dict):
        raise _cli.UsageError(f"{where}: `model` must be a table ([model] with a name); got "
                              f"{tree['model']!r}.")
    if known.model is not None:
        tree["model"]["name"] = known.model
    with _cli.user_errors(f"{where}: "):
        model_cls = MODELS.get(tree["model"].get("name", "vae"))
    args = build_parser(model_cls).parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k not in (
        "config", "set", "model", *recipe_lib.TABLES)}
    for key, value in given.items():
        recipe_lib.set_path(tree, key, value)
    for table in recipe_lib.TABLES:
        name = getattr(args, table)
        if name is not None and (tree.get(table) or {}).get("name") != name:
            tree[table] = {"name": name}
    with _cli.user_errors("--set: "):
        for item in args.set:
            path, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not PATH=VALUE (e.g. posterior.offdiag_scale="
                                 "1e-2).")
            recipe_lib.set_path(tree, path.strip(), recipe_lib.parse_value(value.strip()))
    run = {k: v for k, v in tree.items() if k not in ("model", *recipe_lib.COMPONENTS)}
    allowed = config_lib.TrainConfig.keys()
    for key in run:
        if key not in allowed:
            model_keys = list(recipe_lib.model_arguments(model_cls))
            hint = difflib.get_close_matches(key, allowed + model_keys, n=1)
            where_hint = " in [model]" if hint and hint[0] in model_keys else ""
            raise _cli.UsageError(
                f"unknown key {key!r} in {where}" + (f" (did you mean {hint[0]!r}{where_hint}?)"
                                                     if hint else "")
                + f"; run settings are {sorted(allowed)}, the model's arguments go in "
                "[model], [posterior], [likelihood], [prior] and [[terms]].")
    with _cli.user_errors(f"{where}: "):
        cfg = config_lib.TrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in run.items()}).validate()
        recipe = recipe_lib.Recipe.from_tree(tree)
    check_bounds(cfg)
    if cfg.dataset not in tfvae.data.DATASETS:
        raise _cli.UsageError(f"Unknown dataset {cfg.dataset!r}; expected one of "
                              f"{list(tfvae.data.DATASETS)}.")
    return cfg, recipe, args


def check_bounds(cfg):
    """Upper bounds TrainConfig.validate leaves open: counts fit TensorFlow's int32, the seed
    fits tf_keras' [0, 2**32 - 1]. Raises UsageError before anything is allocated."""
    for key in COUNTS:
        value = getattr(cfg, key)
        if isinstance(value, numbers.Integral) and value > MAX_INT32:
            raise _cli.UsageError(f"`{_flags.flag_name(key)}` must be at most {MAX_INT32} "
                                  f"(TensorFlow counts in int32); got {value}.")
    if isinstance(cfg.seed, numbers.Integral) and cfg.seed > MAX_SEED:
        raise _cli.UsageError(f"`--seed` must be in 0..{MAX_SEED} (tf_keras seeds are 32-bit); "
                              f"got {cfg.seed}.")


def estimate_model_bytes(recipe, image_shape, batch_size):
    """A lower estimate of the memory a model of `recipe` needs to train, in bytes: float32
    weights with their gradients and Adam's two moments (4 copies), one batch's activations
    forward and backward, and the full-covariance head's [D, D] index. None if the recipe's
    sizes are not plain ints (the model's own validation reports those)."""
    latent = recipe.default("latent_dim")
    hidden = recipe.default("hidden_units")
    if isinstance(hidden, list):
        hidden = tuple(hidden)
    if not isinstance(latent, numbers.Integral) or latent < 1:
        return None
    if not (isinstance(hidden, tuple) and hidden
            and all(isinstance(u, numbers.Integral) and u > 0 for u in hidden)):
        hidden = (256,)
    pixels = math.prod(int(s) for s in image_shape)
    d, last = int(latent), int(hidden[-1])
    full = recipe.default("posterior") == "full_covariance"
    head = d * (d + 3) // 2 if full else 2 * d  # posterior parameters per example
    torso = pixels * int(hidden[0]) + sum(a * b for a, b in zip(hidden, hidden[1:]))
    weights = 2 * torso + (last + 1) * head + (d + 1) * last
    activations = batch_size * (head + 2 * pixels + 2 * sum(hidden))
    return 4 * (4 * weights + 3 * activations + (d * d if full else 0))


def check_model_size(recipe, image_shape, batch_size):
    """Refuses, before any allocation, a model that cannot fit in this machine's memory."""
    need, have = estimate_model_bytes(recipe, image_shape, batch_size), _cli.memory_bytes()
    if need is None or have is None or need <= have:
        return
    gib = 2.0**30
    posterior = recipe.default("posterior")
    raise _cli.UsageError(
        f"model {recipe.name!r} with latent_dim={recipe.default('latent_dim')} and the "
        f"{posterior} posterior needs at least {need / gib:,.1f} GiB to train (weights, "
        f"Adam's moments, one batch of {batch_size}), but this machine has "
        f"{have / gib:,.1f} GiB: use a smaller --latent-dim, --hidden-units or --batch-size.")
