"""The train app's model building: the untrained model for the run's data (refusing, with
one line, what cannot be built or cannot compute its loss), and `--dry-run`, which does the
same validation without loading data or writing."""

import types

import numpy as np

from tfvae.apps import _cli
from tfvae.apps._run_dir import default_run_name, run_identity
from tfvae.apps._train_args import check_model_size
from tfvae.apps._train_data import validation_size


def build_model(cfg, recipe, data):
    """The untrained model for `data`; UsageError for arguments a constructor refuses and
    for combinations that cannot compute their loss (a trial on two images, with a fixed
    seed, so the model's random stream is untouched)."""
    check_model_size(recipe, data.image_shape, min(cfg.batch_size, data.num_train))
    where = f"cannot build model {recipe.name!r}: "
    with _cli.user_errors(where):
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
    stand_in = types.SimpleNamespace(  # what build_model and run_identity read of Data
        image_shape=shape, num_train=min(cfg.limit or total, total - held), binarize=binarize,
        test_images=np.zeros((2, *shape), np.float32))
    model = build_model(cfg, recipe, stand_in)
    identity = run_identity(cfg, recipe, stand_in)
    run_name = cfg.run_name or default_run_name(cfg, recipe, model, identity)
    return {**cfg.to_dict(), "binarize": binarize or "none", "run_name": run_name,
            "validation_split": held, **recipe.to_dict()}
