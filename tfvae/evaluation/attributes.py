"""The attribute-vector indicator of generation quality (Larsen et al. 2016, Sec. 5).

```none
v          = mean_{x has A} E[z|x]  -  mean_{x lacks A} E[z|x]       the attribute vector
x_alpha    = Dec(E[z|x] + alpha v)                                    for x that lack A
ratio(a)   = share of x_alpha that an independent classifier says have A
control    = share of x_0 (reconstructions) still classified as x's own class
```
Attributes come from class labels: one class against the rest, or a named group of classes
(`ATTRIBUTES`). `ratio` is exact for the images used (a count), and an estimate of the
model's rate with the usual binomial error sqrt(r (1 - r) / n); it measures the model only
as far as the judging classifier is right (its test accuracy is reported beside it).

Everything here takes plain callables (`encode`: images -> latent means, `decode`:
latents -> images, `classify`: images -> class ids), so it works for any model with an
`encode` and a `decode`, a SavedModel or a live one.

#### References
[1] Larsen, Sønderby, Larochelle & Winther (2016), Autoencoding beyond pixels using a
    learned similarity metric, arXiv:1512.09300, Sec. 5 (attribute vectors).
"""

import numpy as np

FASHION_MNIST_CLASSES = ("t_shirt", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle_boot")
#: dataset -> {attribute name: the class ids that have it}
ATTRIBUTES = {
    "fashion_mnist": {**{name: (i,) for i, name in enumerate(FASHION_MNIST_CLASSES)},
                      "footwear": (5, 7, 9), "top": (0, 2, 4, 6)},
    "mnist": {**{str(i): (i,) for i in range(10)}, "even": (0, 2, 4, 6, 8)},
    "synthetic": {**{f"class_{i}": (i,) for i in range(10)}, "low": (0, 1, 2, 3, 4)},
}
ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)


def attribute_classes(dataset, name):
    """The class ids that have attribute `name` in `dataset`; a one-line ValueError listing
    the choices otherwise."""
    if dataset not in ATTRIBUTES:
        raise ValueError(f"no attributes are defined for dataset {dataset!r}; datasets with "
                         f"attributes: {sorted(ATTRIBUTES)}.")
    if name not in ATTRIBUTES[dataset]:
        raise ValueError(f"unknown attribute {name!r} for {dataset}; expected one of "
                         f"{sorted(ATTRIBUTES[dataset])}.")
    return ATTRIBUTES[dataset][name]


def _batched(fn, x, batch_size):
    return np.concatenate([np.asarray(fn(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def attribute_vector(latents, has_attribute):
    """mean of latents [N, D] where `has_attribute` [N] bool, minus the mean where not: [D]."""
    latents, has = np.asarray(latents, np.float64), np.asarray(has_attribute, bool)
    if latents.ndim != 2 or has.shape != latents.shape[:1]:
        raise ValueError(f"latents must be [N, D] and has_attribute [N]; got "
                         f"{list(latents.shape)} and {list(has.shape)}.")
    if has.all() or not has.any():
        raise ValueError("the attribute vector needs images with and without the attribute; "
                         f"got {int(has.sum())} of {len(has)} with it.")
    return latents[has].mean(0) - latents[~has].mean(0)


def indicator(encode, decode, classify, images, labels, vector, attribute, alphas=ALPHAS,
              batch_size=500):
    """The indicator on `images` that lack the attribute.

    Args:
        encode: images [B, H, W, C] -> latent means [B, D].
        decode: latents [B, D] -> images [B, H, W, C].
        classify: images -> class ids [B].
        images, labels: the starting images (all lacking the attribute) and their classes.
        vector: the attribute vector [D].
        attribute: the class ids that have the attribute.
    Returns:
        {"ratio": {alpha: share classified as having it}, "control": share of the
        alpha = 0 images classified as their own class, "num_images": n,
        "images": {alpha: the generated images [n, H, W, C]}}.
    """
    labels = np.asarray(labels)
    if np.isin(labels, attribute).any():
        raise ValueError("the indicator starts from images that lack the attribute; "
                         f"{int(np.isin(labels, attribute).sum())} of them have it.")
    z = _batched(encode, images, batch_size)
    ratio, generated, control = {}, {}, None
    for alpha in alphas:
        shifted = (z + float(alpha) * np.asarray(vector)).astype(np.float32)
        out = _batched(decode, shifted, batch_size)
        predicted = _batched(classify, out, batch_size)
        ratio[float(alpha)] = float(np.mean(np.isin(predicted, attribute)))
        generated[float(alpha)] = out
        if float(alpha) == 0.0:
            control = float(np.mean(predicted == labels))
    return {"ratio": ratio, "control": control, "num_images": int(len(images)),
            "images": generated}
