"""The TensorBoard embedding projector's files for a run: latent vectors, labels, sprite."""

import math
import os

import numpy as np

from tfvae.callbacks.images import encode_png, image_grid

# The projector's limit on a sprite's side, pixels.
MAX_SPRITE_SIDE = 8192


class ProjectorWriter:
    """Writes the embedding projector's files into `run_dir` (TensorBoard run `<run>`).

    projector_config.pbtxt points at projector/latents.tsv (the vectors),
    projector/metadata.tsv (labels) and projector/sprite.png (the images). Each file is
    written beside its target and renamed, so a live TensorBoard never reads half a file.

    Args:
        run_dir: the run directory.
        images: [N, H, W, C] in [0, 1], one per vector later passed to `write`.
        labels: int labels [N], or None.
        label_names: display names of the label values, or None.
    """

    def __init__(self, run_dir, images, labels=None, label_names=None):
        self.run_dir = run_dir
        self.directory = os.path.join(run_dir, "projector")
        os.makedirs(self.directory, exist_ok=True)
        self.num = len(images)
        if labels is not None:
            names = [label_names[int(l)] if label_names is not None else str(int(l))
                     for l in labels]
            _atomic_write(os.path.join(self.directory, "metadata.tsv"),
                          "label\tclass\n" + "".join(f"{int(l)}\t{n}\n"
                                                      for l, n in zip(labels, names)))
        self.has_metadata = labels is not None
        h, w = images.shape[1:3]
        cols = math.ceil(math.sqrt(self.num))
        sprite = image_grid(images, cols=cols, pad=0, pad_value=0.0)
        if sprite.shape[-1] == 1:
            sprite = np.repeat(sprite, 3, axis=-1)
        self.has_sprite = max(sprite.shape[:2]) <= MAX_SPRITE_SIDE
        if self.has_sprite:
            _atomic_write(os.path.join(self.directory, "sprite.png"), encode_png(sprite))
        self.image_size = (w, h)

    def write(self, vectors):
        """Writes `vectors` [N, D] and the projector config that points at them."""
        from tensorboard.plugins import projector  # noqa: PLC0415  (only when writing)
        _atomic_write(os.path.join(self.directory, "latents.tsv"),
                      "".join("\t".join(f"{v:.6g}" for v in row) + "\n" for row in vectors))
        config = projector.ProjectorConfig()
        emb = config.embeddings.add()
        emb.tensor_name = "posterior_mean"
        emb.tensor_path = os.path.join("projector", "latents.tsv")
        if self.has_metadata:
            emb.metadata_path = os.path.join("projector", "metadata.tsv")
        if self.has_sprite:
            emb.sprite.image_path = os.path.join("projector", "sprite.png")
            emb.sprite.single_image_dim.extend(self.image_size)
        projector.visualize_embeddings(self.run_dir, config)


def _atomic_write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)
