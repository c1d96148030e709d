"""The train app's run directory: its identity (what defines a run, checked on resume),
its default name, run.json, and rebuilding a model from it (`evaluate --model runs/RUN`)."""

import hashlib
import json
import os
import shutil

from tfvae import recipe as recipe_lib
from tfvae._tf import tf
from tfvae.apps import _cli

RUN_FILE = "run.json"


def prepare_run_dir(cfg, run_dir, identity, record, out=print):
    """Creates (or with --fresh, resets) the run directory; refuses a foreign one."""
    run_file = os.path.join(run_dir, RUN_FILE)
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not os.path.exists(run_file):
        raise _cli.UsageError(f"{run_dir!r} exists and is not a tfvae run (no {RUN_FILE}); "
                              "choose another --run-name or --logdir.")
    if cfg.fresh and os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
        out(f"--fresh: deleted {run_dir}")
    if os.path.exists(run_file):
        with open(run_file) as f:
            previous = json.load(f).get("identity", {})
        diff = [k for k in sorted(set(previous) | set(identity))
                if previous.get(k) != identity.get(k)]
        if diff:
            k = diff[0]
            raise _cli.UsageError(
                f"run {os.path.basename(run_dir)!r} was started with different settings "
                f"({k}: {previous.get(k)!r} then, {identity.get(k)!r} now); use --fresh to "
                "start it over, or another --run-name.")
        return
    os.makedirs(run_dir, exist_ok=True)
    with open(run_file + ".tmp", "w") as f:
        json.dump({"identity": identity, **record}, f, indent=2, default=str)
    os.replace(run_file + ".tmp", run_file)


def run_identity(cfg, recipe, data):
    """What defines the run: the run settings that change training, and the recipe."""
    return {"run": {**cfg.identity(), "binarize": data.binarize or "none"},
            "recipe": recipe.to_dict()}


def default_run_name(cfg, recipe, model, identity):
    """`<model>-<dataset>-<likelihood>-z<D>-<6 hex of the identity>`: the same settings
    give the same name, so re-running a command resumes its run."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()) \
        .hexdigest()[:6]
    likelihood = model.likelihood.registry_name
    return f"{recipe.name}-{cfg.dataset}-{likelihood}-z{model.latent_dim}-{digest}"


def load_run(run_dir):
    """(model, metadata) of a run directory: the model rebuilt from run.json, its latest
    checkpoint restored (for `tfvae.apps.evaluate --model runs/RUN`)."""
    with open(os.path.join(run_dir, RUN_FILE)) as f:
        run = json.load(f)
    if "recipe" not in run:
        raise ValueError(f"{run_dir}/{RUN_FILE} predates recipes (no 'recipe'); re-train it.")
    recipe = recipe_lib.Recipe.from_tree(run["recipe"])
    model = recipe.build(run["data"]["image_shape"], run["config"]["seed"],
                         dataset_size=run["data"]["train_examples"])
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    if latest is None:
        raise ValueError(f"run {run_dir!r} has no checkpoint yet")
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    meta = {"config": run["config"], "dataset": run["data"], "recipe": run["recipe"],
            "model": {"name": recipe.name, "config": model.get_config()}}
    return model, meta


def remove_partial_checkpoints(directory):
    """Deletes `ckpt-N_temp/` folders: checkpoint writes that a kill or a full disk
    interrupted (TensorFlow renames a finished one into place; these never were)."""
    if not os.path.isdir(directory):
        return
    for entry in os.listdir(directory):
        if entry.startswith("ckpt-") and "_temp" in entry:
            path = os.path.join(directory, entry)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)
