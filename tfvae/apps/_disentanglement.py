"""The disentanglement scores of a trained model on its dataset's ground-truth factors, for
`evaluate --disentanglement` and the end of a train-app run on such a dataset.

The metrics (`tfvae.evaluation.disentanglement`) draw fresh factor combinations and render
their images, so they need the dataset's generator (`ground_truth.for_dataset`), not its
files. At disentanglement_lib's sample sizes the FactorVAE score alone encodes 960,000
images (about 20 minutes for the dSprites conv encoder on 2 CPU cores); `quick` uses the
sizes of `QUICK` instead, a few minutes in all, and the result says which were used. Every
score is an estimate from finite samples: MIG and SAP from histograms and a split, the
FactorVAE score and DCI from classifiers fitted on draws.
"""

import numpy as np

#: reduced sample sizes of `--disentanglement quick` (per metric, keyword arguments)
QUICK = {"mig": {"num_points": 10000},  # disentanglement_lib's size: cheap, and the headline
         "factor_vae_score": {"num_train": 800, "num_eval": 400},
         "dci": {"num_train": 2000, "num_test": 1000},
         "sap": {"num_train": 2000, "num_test": 1000},
         "mig_chen": {"num_points": 1000, "num_samples": 1000}}


def model_encoder(model, seed=0):
    """The metrics' encoder of a tfvae model: images -> (posterior means, marginal std devs),
    exact for Gaussian posteriors and from samples for implicit ones."""
    from tfvae.callbacks import posterior_moments  # noqa: PLC0415

    def encoder(x):
        return posterior_moments(model, np.asarray(x, np.float32), seed=seed)
    return encoder


def scores(model, dataset, seed=0, quick=False):
    """{"scores": {name: value}, "dimension_factors": [per dim: [factor, fraction] or
    None], "sample_sizes": what was used}. ValueError (one line) for a dataset without
    factors or a model of another image shape."""
    from tfvae.evaluation import disentanglement, ground_truth  # noqa: PLC0415
    data = ground_truth.for_dataset(dataset)
    shape = tuple(getattr(data, "observation_shape", ()) or ())
    if shape and tuple(model.image_shape) != shape:
        raise ValueError(f"the model takes {list(model.image_shape)} images but {dataset!r} "
                         f"renders {list(shape)}; evaluate a model trained on {dataset!r}.")
    encoder = model_encoder(model, seed)
    overrides = QUICK if quick else {}
    values = disentanglement.evaluate_all(encoder, data, seed=seed, **overrides)
    mig = disentanglement.mig(encoder, data, seed=seed, **overrides.get("mig", {}))
    labels = disentanglement.dimension_labels(mig, data.factor_names)
    return {"scores": values,
            "dimension_factors": [list(label) if label else None for label in labels],
            "sample_sizes": ("quick: " + ", ".join(f"{k} {v}" for k, v in QUICK.items())
                             if quick else "disentanglement_lib's defaults"),
            "kind": "estimates from finite samples of the factor distribution"}


def summary_line(result):
    """One line of the headline scores."""
    s = result["scores"]
    parts = [f"MIG {s['mig']:.3f}"] + ([f"MIG (Chen) {s['mig_chen']:.3f}"]
                                       if "mig_chen" in s else [])
    parts += [f"FactorVAE score {s['factor_vae_score']:.3f}",
              f"DCI disentanglement {s['dci_disentanglement']:.3f}", f"SAP {s['sap']:.3f}"]
    return "disentanglement: " + ", ".join(parts) + f" ({result['sample_sizes'].split(':')[0]}" \
        " sample sizes; estimates)"


def end_of_run(cfg, model, writer, step, out):
    """The train app's last step on a dataset with factors: `cfg.disentanglement` scores
    ("quick" or "full"; None when off or the dataset has none), written to TensorBoard as
    `6_disentanglement/<name>` at `step` and returned for metadata.json."""
    from tfvae._tf import tf  # noqa: PLC0415
    from tfvae.evaluation.ground_truth import DATASETS_WITH_FACTORS  # noqa: PLC0415
    if cfg.disentanglement == "off" or cfg.dataset not in DATASETS_WITH_FACTORS:
        return None
    result = scores(model, cfg.dataset, seed=cfg.seed, quick=cfg.disentanglement == "quick")
    with writer.as_default(step=step):
        for name, value in result["scores"].items():
            tf.summary.scalar(f"6_disentanglement/{name}", value, step=step)
    writer.flush()
    out(summary_line(result))
    return result
