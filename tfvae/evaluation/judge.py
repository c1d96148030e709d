"""The judging classifier: an independently trained image classifier whose decisions and
penultimate features score generated images (the attribute indicator, the Fréchet score).

```none
x [28, 28, 1] grey levels -> conv3x3(32, /2) -> conv3x3(64, /2) -> dense(128)
                          = features [128] -> dense(num_classes) -> class logits
```
ReLU throughout, no batch normalization (a batch-independent score). Its architecture is
none of the models' torsos (3x3 kernels, two stages, a 128-wide feature layer),
so a model is not judged by a copy of its own encoder.

It trains on the real training images (grey levels in [0, 1], never binarized) of the
dataset, with a fixed seed, and is cached: `$TFVAE_DATA_DIR/judges/` when that is set,
else `~/.cache/tfvae/judges/`, one weights file per (dataset, image shape, classes,
epochs, seed, version) with its held-out test accuracy beside it. Every score made with
it states that accuracy: a feature space is only as meaningful as the classifier.
"""

import json
import os
import tempfile

import numpy as np

from tfvae import validation
from tfvae._tf import tf, tfk

VERSION = 1
FEATURES = 128


def cache_dir():
    """$TFVAE_DATA_DIR/judges/ when set, else ~/.cache/tfvae/judges/."""
    root = os.environ.get("TFVAE_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "tfvae")
    return os.path.join(root, "judges")


def build_classifier(image_shape, num_classes):
    """(classifier, feature model): logits [B, K] and the 128 features below them."""
    x = tfk.Input(shape=tuple(image_shape))
    h = tfk.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    h = tfk.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = tfk.layers.Flatten()(h)
    features = tfk.layers.Dense(FEATURES, activation="relu", name="features")(h)
    logits = tfk.layers.Dense(num_classes, name="logits")(features)
    return tfk.Model(x, logits, name="judge"), tfk.Model(x, features, name="judge_features")


class Judge:
    """A trained judging classifier.

    Attributes:
        test_accuracy: its accuracy on the held-out test images (exact, on all of them).
        num_classes, image_shape, dataset.
    """

    def __init__(self, classifier, feature_model, test_accuracy, dataset):
        self.classifier = classifier
        self.feature_model = feature_model
        self.test_accuracy = float(test_accuracy)
        self.dataset = dataset
        self.num_classes = int(classifier.output_shape[-1])
        self.image_shape = tuple(classifier.input_shape[1:])

    def _batched(self, fn, x, batch_size):
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape [N, {', '.join(map(str, self.image_shape))}]"
                             f"; got {list(x.shape)}.")
        return np.concatenate([fn(x[i:i + batch_size]).numpy()
                               for i in range(0, len(x), batch_size)]) if len(x) else \
            np.zeros((0,), np.float32)

    def features(self, x, batch_size=500):
        """The 128 penultimate activations of images x [N, H, W, C] in [0, 1]: [N, 128]."""
        return self._batched(self._features, x, batch_size)

    def predict(self, x, batch_size=500):
        """The predicted class of each image, [N] int."""
        return self._batched(self._logits, x, batch_size).argmax(-1)

    @tf.function
    def _features(self, x):
        return self.feature_model(x, training=False)

    @tf.function
    def _logits(self, x):
        return self.classifier(x, training=False)


def train_judge(train_images, train_labels, test_images, test_labels, num_classes, dataset,
                epochs=3, batch_size=128, seed=0, cache=None, log=None):
    """The judge for a dataset: loaded from the cache, or trained on the real training images
    (uint8 or float in [0, 1]) and cached.

    Args:
        cache: the folder of cached judges (default: `cache_dir()`); False: no cache.
        log: a callable taking a line of progress (e.g. print), or None.
    """
    epochs = validation.positive_int(epochs, "epochs")
    num_classes = validation.positive_int(num_classes, "num_classes")
    x_train, x_test = _as_float(train_images), _as_float(test_images)
    shape = x_train.shape[1:]
    key = (f"judge_v{VERSION}_{dataset}_{'x'.join(map(str, shape))}_k{num_classes}"
           f"_e{epochs}_s{seed}_n{len(x_train)}")
    folder = cache_dir() if cache is None else cache
    classifier, feature_model = build_classifier(shape, num_classes)
    if folder:
        weights, info = (os.path.join(folder, key + ".weights.h5"),
                         os.path.join(folder, key + ".json"))
        if os.path.exists(weights) and os.path.exists(info):
            classifier.load_weights(weights)
            with open(info, encoding="utf-8") as f:
                accuracy = json.load(f)["test_accuracy"]
            if log:
                log(f"judging classifier: cached {weights} (test accuracy {accuracy:.4f})")
            return Judge(classifier, feature_model, accuracy, dataset)
    if log:
        log(f"judging classifier: training on {len(x_train)} real {dataset} images, "
            f"{epochs} epochs")
    tfk.utils.set_random_seed(seed)
    classifier.compile(optimizer=tfk.optimizers.Adam(1e-3), metrics=["accuracy"],
                       loss=tfk.losses.SparseCategoricalCrossentropy(from_logits=True))
    classifier.fit(x_train, np.asarray(train_labels), batch_size=batch_size, epochs=epochs,
                   verbose=0, shuffle=True)
    judge = Judge(classifier, feature_model, 0.0, dataset)
    judge.test_accuracy = float(np.mean(judge.predict(x_test) == np.asarray(test_labels)))
    if folder:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".weights.h5")
        os.close(fd)
        classifier.save_weights(tmp)
        os.replace(tmp, weights)
        with open(info + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"test_accuracy": judge.test_accuracy, "dataset": dataset,
                       "epochs": epochs, "seed": seed}, f)
        os.replace(info + ".tmp", info)
    if log:
        log(f"judging classifier: test accuracy {judge.test_accuracy:.4f} "
            f"({len(x_test)} test images)")
    return judge


def _as_float(images):
    images = np.asarray(images)
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else \
        images.astype(np.float32)
