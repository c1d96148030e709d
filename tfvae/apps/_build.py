"""The train app's model building: the untrained model for the run's data (refusing, with
one line, what cannot be built or cannot compute its loss), and `--dry-run`, which does the
same validation without loading data or writing."""

import types

import numpy as np

from tfvae import validation
from tfvae.apps import _cli
from tfvae.apps._run_dir import default_run_name, run_identity
from tfvae.apps._train_args import check_model_size
from tfvae.apps._train_data import steps_per_epoch, validation_size
from tfvae.recipe import Recipe


#: the fraction of the run the KL weight warms up over when --kl-warmup is not given
DEFAULT_KL_WARMUP = 0.5


def _warmup_kind(recipe):
    """How `recipe` takes a KL warm-up: "terms" (model `vae` with its default ELBO terms),
    "warmup_steps" (`beta_vae` that sets none), or None (it does not)."""
    if recipe.name == "vae" and recipe.terms is None and \
            recipe.model.get("objective", "elbo") == "elbo":
        return "terms"
    if recipe.name == "beta_vae" and "warmup_steps" not in recipe.model:
        return "warmup_steps"
    return None


def kl_warmup_fraction(cfg, recipe):
    """The fraction of the run over which `recipe`'s KL weight warms up: `cfg.kl_warmup`, or
    DEFAULT_KL_WARMUP when unset, where the objective is the ELBO with a KL weight (model
    `vae` with its default terms, `beta_vae` without its own `warmup_steps`); 0 elsewhere.
    A warm-up asked of another model is a UsageError."""
    if _warmup_kind(recipe) is None:
        if cfg.kl_warmup:
            why = ("it sets its own `warmup_steps`" if recipe.name == "beta_vae" else
                   "its objective has no single KL weight to warm up (it applies to model "
                   "'vae' with its default terms and to 'beta_vae')")
            raise _cli.UsageError(f"--kl-warmup does not apply to model {recipe.name!r}: "
                                  f"{why}; drop --kl-warmup.")
        return 0.0
    return DEFAULT_KL_WARMUP if cfg.kl_warmup is None else float(cfg.kl_warmup)


def with_kl_warmup(cfg, recipe, total_steps):
    """`recipe` with its KL weight rising linearly from 0 to beta over the first
    `kl_warmup_fraction(cfg, recipe)` of a run of `total_steps` optimizer steps (Bowman et
    al. 2016; Sonderby et al. 2016): model `vae`'s default terms become reconstruction + a
    kl term with that schedule as its weight; `beta_vae` gets `warmup_steps`."""
    fraction = kl_warmup_fraction(cfg, recipe)
    if not fraction:
        return recipe
    steps = max(1, round(fraction * total_steps))
    model = dict(recipe.model)
    tree = {**recipe.tables}
    if _warmup_kind(recipe) == "warmup_steps":
        model["warmup_steps"] = steps
    else:
        beta = validation.non_negative(model.pop("beta", 1.0), "beta")
        tree["terms"] = ["reconstruction", {"name": "kl", "weight": {
            "schedule": "linear", "start": 0.0, "end": beta, "steps": steps}}]
    return Recipe.from_tree({"model": {"name": recipe.name, **model}, **tree})


def total_steps(cfg, data):
    """The run's optimizer steps: --epochs of data.steps_per_epoch."""
    return cfg.epochs * data.steps_per_epoch


def build_model(cfg, recipe, data):
    """The untrained model for `data`, with the run's KL warm-up (`with_kl_warmup`);
    UsageError for arguments a constructor refuses and for combinations that cannot compute
    their loss (a trial on two images, with a fixed seed, so the model's random stream is
    untouched)."""
    check_model_size(recipe, data.image_shape, min(cfg.batch_size, data.num_train))
    where = f"cannot build model {recipe.name!r}: "
    with _cli.user_errors(where):
        recipe = with_kl_warmup(cfg, recipe, total_steps(cfg, data))
        try:
            model = recipe.build(data.image_shape, cfg.seed, dataset_size=data.num_train)
        except MemoryError as e:
            raise _cli.UsageError(f"{where}it needs more memory than this machine has "
                                  f"({_cli.one_line(e)}); use a smaller model.") from None
    x = data.test_images[:2]
    try:
        model.compute_losses(x, seed=0)
    except (ValueError, TypeError, NotImplementedError) as e:
        raise _cli.UsageError(f"{where}{_cli.one_line(e)}") from None
    return model


#: image shapes of the datasets whose images are not 28x28x1, and training-split sizes, for
#: --dry-run (no data loaded)
DRY_RUN_SHAPES = {"dsprites": (64, 64, 1)}
DRY_RUN_SIZES = {"fashion_mnist": 60000, "mnist": 60000, "synthetic": 2048,
                 "dsprites": 737280}


def dry_run(cfg, recipe):
    """The resolved settings, validated as a real run validates them but without loading data
    or writing: the memory estimate, the model built for the dataset's image shape and a
    trial loss on two blank images. Returns what --dry-run prints (the run name and the
    binarization resolved, not null)."""
    shape = DRY_RUN_SHAPES.get(cfg.dataset, (28, 28, 1))
    binarize = cfg.resolved_binarize(recipe.default("likelihood"))
    total = DRY_RUN_SIZES.get(cfg.dataset, 60000)
    held = validation_size(cfg, total)
    num_train = min(cfg.limit or total, total - held)
    stand_in = types.SimpleNamespace(  # what build_model and run_identity read of Data
        image_shape=shape, num_train=num_train, binarize=binarize,
        steps_per_epoch=steps_per_epoch(cfg, num_train),
        test_images=np.zeros((2, *shape), np.float32))
    model = build_model(cfg, recipe, stand_in)
    identity = run_identity(cfg, recipe, stand_in)
    run_name = cfg.run_name or default_run_name(cfg, recipe, model, identity)
    return {**cfg.to_dict(), "binarize": binarize or "none", "run_name": run_name,
            "validation_split": held, "kl_warmup": kl_warmup_fraction(cfg, recipe),
            **with_kl_warmup(cfg, recipe, total_steps(cfg, stand_in)).to_dict()}
