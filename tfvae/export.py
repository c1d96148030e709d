"""SavedModel export with tensor-only serving signatures, written atomically.

```none
signature        inputs                      outputs
encode           x [B, H, W, C] float32      loc [B, D], scale_tril [B, D, D], z [B, D]
decode           z [B, D] float32            mean [B, H, W, C]   (probabilities for Bernoulli)
reconstruct      x [B, H, W, C] float32      reconstruction [B, H, W, C] = E[x | z = E[z|x]]
sample           n [] int32                  images [n, H, W, C] = E[x|z], z ~ p(z)
log_likelihood   x [B, H, W, C] float32      log_likelihood [B], nats: importance-weighted
                                             log p(x) with k samples (Burda et al. 2016)
```
`z` (encode), `sample` and `log_likelihood` are random: they draw seeds from a
`tf.random.Generator` saved with the model, so each call gets fresh noise and a fresh load
repeats the same sequence (`reseed(seed)` restarts it). `log_likelihood` is the estimator of
`tfvae.evaluation.log_likelihood` on one batch with k fixed at export (`iwae_samples`,
default 100): a lower bound on log p(x) in expectation that tightens with k; report numbers
from `tfvae.apps.evaluate` with k >= 1000.

Everything the signatures compute is plain TensorFlow ops, so the SavedModel loads with
`tf.saved_model.load` where neither tfvae nor TensorFlow Probability is installed, and
`saved_model_cli show --all --dir DIR` lists the signatures. `metadata.json` beside
`saved_model.pb` holds the run's config, dataset, final metrics and package versions.

#### Models that export something else

A posterior without a density (`model.has_density` False, e.g. AVB's implicit one) exports
`encode -> {z}` only, and `log_likelihood` only if the model defines `proposal(x)`. A model
may also define ``export_signatures(self, module) -> dict``: name -> a `tf.function` with an
`input_signature` (added or replacing a default) or None (dropping one). `module` is the
`ExportModule`, with `module.x_spec`, `module.z_spec` and `module.seed()` (a fresh stateless
seed, int32 [2]).

#### Atomicity

The SavedModel is written to a hidden sibling directory (`.NAME.tmp-PID-...`) and renamed
onto the target only when complete: readers see the old export or the new one, never a
half-written directory. An existing export is swapped with `renameat2(RENAME_EXCHANGE)`
where the kernel has it (one atomic step), else moved aside and replaced (the target is
briefly absent, never partial). A crash leaves the previous export intact; stale temporary
directories of dead processes are removed by the next save.
"""

import ctypes
import datetime
import json
import math
import os
import platform
import shutil
import sys
import tempfile

import numpy as np

from tfvae._tf import tf, tfd

SIGNATURES = ("encode", "decode", "reconstruct", "sample", "log_likelihood")
METADATA_FILE = "metadata.json"
FORMAT = "tfvae-savedmodel/1"


def _iwae(model, x, num_samples, chunk_size, seed):
    """One batch of `tfvae.evaluation.log_likelihood`: [B] nats, same draws for the same seed."""
    from tfvae.evaluation import iwae  # noqa: PLC0415  (its helpers are the single source)
    padded = math.ceil(num_samples / chunk_size) * chunk_size
    # pylint: disable=protected-access
    eps = iwae._per_example_noise(seed, tf.constant(0, tf.int32), tf.shape(x)[0],
                                  num_samples, model.latent_dim, x.dtype, padded)
    return iwae._iwae_batch(model, x, iwae._chunked(eps, chunk_size), seed, num_samples,
                            chunk_size)


class _Untracked:
    """Holds an object without making it a checkpoint/SavedModel dependency."""

    def __init__(self, obj):
        self.obj = obj


def _scale_tril(q_z):
    if isinstance(q_z, tfd.MultivariateNormalLinearOperator):
        return q_z.scale.to_dense()
    return tf.linalg.cholesky(q_z.covariance())


class ExportModule(tf.Module):
    """The exported object: the model's variables plus tensor-only tf.functions.

    Args:
        model: a `tfvae.VAE` (anything with `encode`, `decode`, `prior`, `latent_dim`,
            `image_shape`, `has_density` and `__call__`).
        iwae_samples: k of the `log_likelihood` signature. Default value: 100.
        chunk_size: samples per step of its running logsumexp. Default value: min(k, 100).
        seed: seed of the generator behind `z`, `sample` and `log_likelihood`.
            Default value: 0.
    """

    def __init__(self, model, iwae_samples=100, chunk_size=None, seed=0):
        super().__init__(name="tfvae_export")
        if isinstance(iwae_samples, bool) or not isinstance(iwae_samples, (int, np.integer)) \
                or iwae_samples <= 0:
            raise ValueError(f"`iwae_samples` must be a positive int; got {iwae_samples!r}.")
        # The Keras model itself stays out of the saved object graph: saving it would trace
        # every layer and store TFP distribution specs, which need TFP to load. Only its
        # variables are tracked; the signatures capture them.
        self._model_ref = _Untracked(model)
        self.model_variables = list(model.variables)
        self.iwae_samples = int(iwae_samples)
        self.chunk_size = int(min(chunk_size or 100, self.iwae_samples))
        self.rng = tf.random.Generator.from_seed(seed)
        h, w, c = model.image_shape
        self.x_spec = tf.TensorSpec([None, h, w, c], tf.float32, name="x")
        self.z_spec = tf.TensorSpec([None, model.latent_dim], tf.float32, name="z")
        self.has_density = bool(getattr(model, "has_density", True))
        self.has_proposal = self.has_density or getattr(model, "proposal", None) is not None

        self.encode = tf.function(self._encode, input_signature=[self.x_spec])
        self.decode = tf.function(self._decode, input_signature=[self.z_spec])
        self.reconstruct = tf.function(self._reconstruct, input_signature=[self.x_spec])
        self.sample = tf.function(self._sample,
                                  input_signature=[tf.TensorSpec([], tf.int32, name="n")])
        if self.has_proposal:
            self.log_likelihood = tf.function(self._log_likelihood,
                                              input_signature=[self.x_spec])
        self.reseed = tf.function(self._reseed,
                                  input_signature=[tf.TensorSpec([], tf.int64, name="seed")])
        functions = {name: getattr(self, name) for name in SIGNATURES if hasattr(self, name)}
        hook = getattr(model, "export_signatures", None)
        if callable(hook):
            for name, fn in dict(hook(self)).items():
                if fn is None:
                    functions.pop(name, None)
                else:
                    setattr(self, name, fn)  # tracked, so its variables are saved
                    functions[name] = fn
        self._functions_ref = _Untracked(functions)  # the attributes above are what is saved

    @property
    def model(self):
        return self._model_ref.obj

    def seed(self):
        """A fresh stateless seed (int32 [2]) from the export's generator."""
        return self.rng.uniform_full_int([2], dtype=tf.int32)

    def _encode(self, x):
        q_z = self.model.encode(x)
        z = q_z.sample(seed=self.seed())
        if not self.has_density:
            return {"z": z}
        return {"loc": q_z.mean(), "scale_tril": _scale_tril(q_z), "z": z}

    def _decode(self, z):
        return {"mean": self.model.decode(z).mean()}

    def _reconstruct(self, x):
        return {"reconstruction": self.model(x, training=False)}

    def _sample(self, n):
        z = self.model.prior.sample(n, seed=self.seed())
        return {"images": self.model.decode(z).mean()}

    def _log_likelihood(self, x):
        return {"log_likelihood": _iwae(self.model, x, self.iwae_samples, self.chunk_size,
                                        self.seed())}

    def _reseed(self, seed):
        # Philox state = (counter, counter, key): restart the stream at key `seed`.
        self.rng.reset(tf.stack([tf.constant(0, tf.int64), tf.constant(0, tf.int64), seed]))
        return {"seed": seed}

    def signature_functions(self):
        """{name: tf.function} of the serving signatures (traced when saved)."""
        return dict(self._functions_ref.obj)

    def drop(self, name):
        """Removes signature `name` (and its attribute, so it is not saved either)."""
        self._functions_ref.obj.pop(name, None)
        if name in self.__dict__:
            delattr(self, name)
        if name == "log_likelihood":
            self.has_proposal = False


def describe_signatures(path):
    """{name: {"inputs": {arg: [shape, dtype]}, "outputs": {key: [shape, dtype]}}} of the
    serving signatures of the SavedModel at `path`, read from its saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def spec(info):
        dims = [-1 if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
        return [dims, tf.dtypes.as_dtype(info.dtype).name]
    out = {}
    for name, sig in sorted(proto.meta_graphs[0].signature_def.items()):
        if name.startswith("__"):
            continue
        out[name] = {"inputs": {k: spec(v) for k, v in sorted(sig.inputs.items())},
                     "outputs": {k: spec(v) for k, v in sorted(sig.outputs.items())}}
    return out


def package_versions():
    import tf_keras  # noqa: PLC0415
    import tensorflow_probability as tfp  # noqa: PLC0415
    import tfvae  # noqa: PLC0415
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "tensorflow_probability": tfp.__version__, "tf_keras": tf_keras.__version__,
            "numpy": np.__version__, "tfvae": getattr(tfvae, "__version__", "unknown")}


def _model_config(model):
    try:
        return json.loads(json.dumps(model.get_config(), default=str))
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        return None


def build_metadata(model, module, signatures, metadata=None):
    """metadata.json's content; `signatures` as `describe_signatures` returns them."""
    meta = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                  "name": getattr(model, "registry_name", None),
                  "config": _model_config(model)},
        "image_shape": list(model.image_shape),
        "latent_dim": int(model.latent_dim),
        "has_density": module.has_density,
        "signatures": signatures,
        "log_likelihood": {"estimator": "importance-weighted (IWAE) bound, nats per example",
                           "num_samples": module.iwae_samples,
                           "chunk_size": module.chunk_size} if module.has_proposal else None,
        "versions": package_versions(),
    }
    meta.update(metadata or {})
    return meta


def save(model, path, metadata=None, iwae_samples=100, chunk_size=None, seed=0):
    """Writes `model` as a SavedModel at `path`, atomically; returns the `ExportModule`.

    Args:
        model: the trained model.
        path: the export directory (e.g. "saved_models/run"). An existing SavedModel there
            is replaced; any other non-empty directory is refused.
        metadata: JSON-able dict merged into metadata.json (config, dataset, metrics, ...).
        iwae_samples: k of the `log_likelihood` signature. Default value: 100.
        chunk_size: samples per logsumexp step of `log_likelihood`. Default value: 100.
        seed: seed of the export's generator. Default value: 0.

    Raises:
        ValueError: `path` exists and is a file, or a non-empty directory that is no
            SavedModel; or metadata is not JSON-able.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`path` {path!r} exists and is not a directory.")
    if os.path.isdir(path) and os.listdir(path) and not _is_saved_model(path):
        raise ValueError(f"`path` {path!r} is a non-empty directory that is not a "
                         "SavedModel; refusing to replace it.")
    try:
        json.dumps(metadata)
    except TypeError as e:
        raise ValueError(f"`metadata` must be JSON-able: {e}") from None
    module = ExportModule(model, iwae_samples=iwae_samples, chunk_size=chunk_size, seed=seed)

    os.makedirs(parent, exist_ok=True)
    _remove_stale_temps(parent, name)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-{os.getpid()}-")
    try:
        _save_module(module, tmp)
        meta = build_metadata(model, module, describe_signatures(tmp), metadata)
        _write_metadata(tmp, json.dumps(meta, indent=2))
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return module


def _save_module(module, directory):
    """tf.saved_model.save, tracing each signature once (in the save context).

    A model whose `log_likelihood` cannot be traced (a `proposal` that raises, as the
    autoencoder's does: a point mass is no importance distribution) is saved without it.
    """
    try:
        tf.saved_model.save(module, directory, signatures=module.signature_functions())
    except (ValueError, NotImplementedError, TypeError) as first:
        if "log_likelihood" not in module.signature_functions():
            raise
        module.drop("log_likelihood")
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        try:
            tf.saved_model.save(module, directory, signatures=module.signature_functions())
        except Exception:  # noqa: BLE001  (the first error is the informative one)
            raise first from None


def _is_saved_model(path):
    return os.path.exists(os.path.join(path, "saved_model.pb"))


def _write_metadata(directory, text):
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())


def load_metadata(path):
    """The metadata.json of an export, as a dict."""
    with open(os.path.join(path, METADATA_FILE)) as f:
        return json.load(f)


def _publish(tmp, path):
    """Moves the finished directory `tmp` onto `path`; the old export (if any) is removed."""
    _fsync_dir(tmp)
    if not os.path.exists(path):
        os.rename(tmp, path)
    elif _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous export
    else:
        old = tmp + ".old"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(os.path.dirname(path))


def _exchange(a, b):
    """Atomically swaps two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(parent, name):
    """Deletes `.NAME.tmp-PID-*` directories whose process is gone (a killed export)."""
    prefix = f".{name}.tmp-"
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
