"""What `--model` names, loaded: a SavedModel rebuilt as a live tfvae model from its
metadata.json and given the exported weights, or a training run directory's latest
checkpoint. Damaged or foreign files become one-line UsageErrors."""

import os

from tfvae.apps import _cli


def load_saved_model(path):
    """(model, metadata): the live tfvae model rebuilt from a SavedModel's metadata.json and
    given the exported weights (the export tracks `model.variables` in order)."""
    from tfvae import export
    from tfvae._tf import tf
    from tfvae.registry import MODELS
    meta = export.load_metadata(path)
    spec = meta.get("model") or {}
    if not spec.get("name") or not spec.get("config"):
        raise ValueError("its metadata.json has no model name and config to rebuild it from")
    model = MODELS.get(spec["name"]).from_config(spec["config"])
    loaded = tf.saved_model.load(path)
    saved = list(loaded.model_variables)
    if len(saved) != len(model.variables) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(model.variables, saved)):
        raise ValueError(f"the rebuilt {spec['name']!r} model has {len(model.variables)} "
                         f"variables but the export has {len(saved)}")
    for variable, value in zip(model.variables, saved):
        variable.assign(value)
    return model, meta


def load(path):
    """(model, metadata) from a SavedModel directory or a run directory."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        loader = load_saved_model
    elif os.path.exists(os.path.join(path, "run.json")):
        from tfvae.apps import train
        loader = train.load_run
    else:
        loader = None
    if loader is not None:
        try:
            return loader(path)
        except _cli.load_errors() as e:  # a damaged or foreign file: one line, no traceback
            raise _cli.UsageError(f"cannot load --model {path!r}: {_cli.one_line(e)} "
                                  "(re-export or re-train the model)") from None
    raise _cli.UsageError(f"--model {path!r} is neither a SavedModel (no saved_model.pb) nor "
                          "a training run directory (no run.json)")
