"""tfvae.export: atomic replacement, crashes that leave the previous export intact, stale
temporaries, refusals, and what each kind of posterior (or a hook) makes a model export."""

import os

import numpy as np
import pytest

import tfvae
from tfvae import export
from tfvae._tf import tf
from tfvae.registry import MODELS


def _vae(seed):
    return tfvae.VAE(latent_dim=2, hidden_units=(16,), seed=seed)


def _decoded(path, z):
    return tf.saved_model.load(path).signatures["decode"](z=tf.constant(z))["mean"].numpy()


def _listing(parent):
    return sorted(os.listdir(parent))


def _dead_pid():
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_crash_during_export_leaves_the_previous_export_intact(tmp_path, monkeypatch):
    target = tmp_path / "saved" / "run"
    z = np.array([[0.5, -1.0]], np.float32)
    old, new = _vae(1), _vae(2)
    export.save(old, target, metadata={"version": 1})
    before = _decoded(str(target), z)
    files = sorted(os.path.relpath(os.path.join(d, f), target)
                   for d, _, fs in os.walk(target) for f in fs)
    # A dead exporter's temporary directory: removed by the next save.
    stale = tmp_path / "saved" / f".run.tmp-{_dead_pid()}-abc"
    stale.mkdir()
    (stale / "saved_model.pb").write_bytes(b"partial")
    assert not np.allclose(_decoded(str(target), z), new.decode(z).mean().numpy())

    real_save, real_publish = tf.saved_model.save, export.atomic.publish

    def crash_mid_write(obj, path, signatures=None):
        # Half a SavedModel on disk, then the process "dies".
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"\x08\x01 half-written")
        raise RuntimeError("simulated crash while writing")

    def crash_on_publish(a, b):
        raise RuntimeError("simulated crash before the rename")

    # Crashes while writing, when publishing starts, and at the atomic swap itself.
    for name, obj, attr, fn in [("write", export.tf.saved_model, "save", crash_mid_write),
                                ("publish", export.atomic, "publish", crash_on_publish),
                                ("exchange", export.atomic, "_exchange", crash_on_publish)]:
        with monkeypatch.context() as m:
            m.setattr(obj, attr, fn)
            with pytest.raises(RuntimeError, match="simulated crash"):
                export.save(new, target, metadata={"version": 2})
        assert tf.saved_model.save is real_save and export.atomic.publish is real_publish
        # The old export is untouched, byte for byte the same files, and still loads.
        now = sorted(os.path.relpath(os.path.join(d, f), target)
                     for d, _, fs in os.walk(target) for f in fs)
        assert now == files, name
        np.testing.assert_array_equal(_decoded(str(target), z), before)
        assert export.load_metadata(target)["version"] == 1
        # Nothing half-written is left beside it (the stale one went at the first save).
        assert _listing(tmp_path / "saved") == ["run"], name

    export.save(new, target, metadata={"version": 2})
    np.testing.assert_allclose(_decoded(str(target), z), new.decode(z).mean().numpy(),
                               atol=1e-6)
    assert export.load_metadata(target)["version"] == 2
    assert _listing(tmp_path / "saved") == ["run"]


def test_refuses_to_replace_what_is_not_a_saved_model(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a SavedModel; refusing to replace it"):
        export.save(_vae(0), tmp_path / "notes")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        export.save(_vae(0), tmp_path / "file")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="`iwae_samples` must be a positive int; got 0"):
        export.save(_vae(0), tmp_path / "x", iwae_samples=0)
    with pytest.raises(ValueError, match="`metadata` must be JSON-able"):
        export.save(_vae(0), tmp_path / "y", metadata={"bad": object()})
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


class _HookVAE(tfvae.VAE):
    """Drops `sample` and adds `logits` through the export hook."""

    def export_signatures(self, module):
        @tf.function(input_signature=[module.z_spec])
        def logits(z):
            return {"logits": self.decode(z).distribution.logits}
        return {"sample": None, "logits": logits}


def test_what_each_kind_of_model_exports(tmp_path):
    x = np.zeros((3, 28, 28, 1), np.float32)
    z = np.array([[0.1, 0.2]], np.float32)

    # The posterior decides: a Gaussian exports its parameters and log q; a sampler only z,
    # but it has a fitted proposal, so log p(x) is exported; a point mass has neither.
    expected = {  # posterior: (encode's outputs, has log_likelihood)
        "diagonal": ({"loc", "scale_tril", "z", "log_q"}, True),
        "implicit": ({"z"}, True),
        "deterministic": ({"z"}, False),
    }
    for posterior, (outputs, has_log_likelihood) in expected.items():
        model_cls = MODELS.get("ae" if posterior == "deterministic" else "vae")
        model = model_cls(latent_dim=2, posterior=posterior, hidden_units=(16,), seed=0)
        assert model.posterior.has_proposal is has_log_likelihood
        export.save(model, tmp_path / posterior, iwae_samples=10)
        loaded = tf.saved_model.load(str(tmp_path / posterior))
        signatures = ["decode", "encode", "reconstruct", "sample"]
        signatures += ["log_likelihood"] if has_log_likelihood else []
        assert sorted(loaded.signatures) == sorted(signatures), posterior
        encoded = loaded.signatures["encode"](x=tf.constant(x))
        assert set(encoded) == outputs and encoded["z"].shape == (3, 2), posterior
        q = model.encode(x)
        if posterior == "diagonal":
            np.testing.assert_allclose(encoded["loc"].numpy(), q.loc.numpy(), atol=1e-6)
            np.testing.assert_allclose(encoded["log_q"].numpy(),
                                       q.log_prob(encoded["z"]).numpy(), atol=1e-4)
        if posterior == "deterministic":  # the point itself, not a draw
            np.testing.assert_allclose(encoded["z"].numpy(), q.mean().numpy(), atol=1e-6)
        if has_log_likelihood:
            log_px = loaded.signatures["log_likelihood"](x=tf.constant(x))["log_likelihood"]
            assert log_px.shape == (3,) and np.all(np.isfinite(log_px.numpy()))
        meta = export.load_metadata(tmp_path / posterior)
        assert meta["has_density"] is (posterior == "diagonal"), posterior
        assert (meta["log_likelihood"] is None) is not has_log_likelihood, posterior
        if has_log_likelihood:
            assert meta["log_likelihood"]["num_samples"] == 10

    hooked = _HookVAE(latent_dim=2, hidden_units=(16,), seed=0)
    export.save(hooked, tmp_path / "hooked")
    loaded = tf.saved_model.load(str(tmp_path / "hooked"))
    assert sorted(loaded.signatures) == ["decode", "encode", "log_likelihood", "logits",
                                         "reconstruct"]
    logits = loaded.signatures["logits"](z=tf.constant(z))["logits"].numpy()
    np.testing.assert_allclose(tf.sigmoid(logits).numpy(), hooked.decode(z).mean().numpy(),
                               atol=1e-6)
    meta = export.load_metadata(tmp_path / "hooked")
    assert meta["signatures"]["logits"] == {"inputs": {"z": [[-1, 2], "float32"]},
                                            "outputs": {"logits": [[-1, 28, 28, 1],
                                                                   "float32"]}}


def test_random_signatures_repeat_from_a_fresh_load_and_reseed(tmp_path):
    model = _vae(5)
    export.save(model, tmp_path / "m")
    first = tf.saved_model.load(str(tmp_path / "m"))
    second = tf.saved_model.load(str(tmp_path / "m"))
    a = first.signatures["sample"](n=tf.constant(4))["images"].numpy()
    b = first.signatures["sample"](n=tf.constant(4))["images"].numpy()
    c = second.signatures["sample"](n=tf.constant(4))["images"].numpy()
    np.testing.assert_array_equal(a, c)      # a fresh load repeats the stream
    assert np.abs(a - b).max() > 1e-3          # and each call draws anew
    first.reseed(tf.constant(7, tf.int64))
    second.reseed(tf.constant(7, tf.int64))
    np.testing.assert_array_equal(first.signatures["sample"](n=tf.constant(4))["images"],
                                  second.signatures["sample"](n=tf.constant(4))["images"])
