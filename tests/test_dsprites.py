"""dSprites-like data: the release's grid, the renderer's geometry, the cache and the pipeline."""

import os

import numpy as np
import pytest

from tfvae import data, dsprites


def test_grid_count_order_and_values():
    assert dsprites.NUM_IMAGES == 737280 == 3 * 6 * 40 * 32 * 32
    classes = dsprites.latents_classes()
    assert classes.shape == (737280, 6)
    # Release order: index 0 is all zeros, posY varies fastest, then posX, ... (C order).
    np.testing.assert_array_equal(classes[0], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(classes[1], [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(classes[32], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(classes[32 * 32], [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(classes[32 * 32 * 40], [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(classes[32 * 32 * 40 * 6], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(classes[-1], [0, 2, 5, 39, 31, 31])
    np.testing.assert_array_equal(dsprites.index_of(classes[::997]), np.arange(0, 737280, 997))
    # Every combination exactly once.
    assert len(np.unique(dsprites.index_of(classes))) == 737280
    values = dsprites.latents_values(classes[[0, -1, 32 * 32 * 13 + 32 * 7 + 5]])
    np.testing.assert_allclose(values[0], [1, 1, 0.5, 0, 0, 0])
    np.testing.assert_allclose(values[1], [1, 3, 1, 2 * np.pi, 1, 1])
    np.testing.assert_allclose(values[2], [1, 1, 0.5, 13 * 2 * np.pi / 39, 7 / 31, 5 / 31])
    np.testing.assert_allclose(dsprites.LATENT_VALUES["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])


def test_area_grows_with_scale_as_its_square():
    area = dsprites.templates().sum(axis=(-1, -2)).astype(float)  # [shape, scale, orientation]
    assert np.all(np.diff(area, axis=1) > 0), "every sprite must grow with every scale step"
    scales = dsprites.LATENT_VALUES["scale"]
    # The continuous areas at scale 1: square 15.6^2, ellipse pi 10 5, heart (by sampling).
    u = np.random.default_rng(0).uniform(-12, 12, (400000, 2))
    heart = 24 ** 2 * dsprites._inside(2, u[:, 0], u[:, 1]).mean()
    expected = np.array([15.6 ** 2, np.pi * 50, heart])[:, None] * scales ** 2
    np.testing.assert_allclose(area.mean(axis=2), expected, rtol=0.06)


def test_orientation_two_pi_is_orientation_zero_and_rotation_turns_the_sprite():
    t = dsprites.templates()
    np.testing.assert_array_equal(t[:, :, 0], t[:, :, 39])
    assert np.any(t[:, :, 0] != t[:, :, 1])
    # Ellipse: long axis along x at 0; a quarter turn (orientation ~ 2 pi * 10/39) stands it up.
    flat, upright = t[1, 5, 0], t[1, 5, 10]
    width = lambda m: np.ptp(np.nonzero(m.any(axis=0))[0]) + 1  # noqa: E731
    height = lambda m: np.ptp(np.nonzero(m.any(axis=1))[0]) + 1  # noqa: E731
    assert (width(flat), height(flat)) == (19, 9)  # axes 20 x 10 px at scale 1
    assert height(upright) >= 18 and width(upright) <= 11


def test_positions_translate_by_one_pixel_and_stay_inside():
    classes = np.array([[0, 0, 5, 7, x, y] for x in (0, 1, 31) for y in (0, 2, 31)])
    images = dsprites.render(classes)
    rows, cols = [], []
    for img in images:
        r, c = np.nonzero(img)
        rows.append(r.mean())
        cols.append(c.mean())
    np.testing.assert_allclose(np.array(cols).reshape(3, 3) - cols[0],
                               np.array([[0, 0, 0], [1, 1, 1], [31, 31, 31]]), atol=1e-9)
    np.testing.assert_allclose(np.array(rows).reshape(3, 3) - rows[0],
                               np.array([[0, 2, 31]] * 3), atol=1e-9)
    # The largest sprite at both corners fits in the 64 x 64 frame with a margin.
    big = dsprites.render(np.array([[0, 0, 5, 5, 0, 0], [0, 0, 5, 5, 31, 31]]))
    assert big[:, :4].sum() == 0 and big[:, -4:].sum() == 0
    assert big[:, :, :4].sum() == 0 and big[:, :, -4:].sum() == 0


def test_block_render_matches_per_image_render_and_packing():
    start = dsprites.index_of([[0, 2, 3, 17, 0, 0]])[0]
    classes = dsprites.latents_classes(np.arange(start, start + 1024))
    block = dsprites.render_block(2, 3, 17).reshape(1024, 64, 64)
    np.testing.assert_array_equal(block, dsprites.render(classes))
    packed = np.packbits(block, axis=-1)
    np.testing.assert_array_equal(np.unpackbits(packed, axis=-1), block)


def test_render_rejects_bad_classes():
    with pytest.raises(ValueError, match=r"shape \[N, 6\]"):
        dsprites.render(np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="out of range"):
        dsprites.render(np.array([[0, 3, 0, 0, 0, 0]]))


@pytest.fixture()
def small_grid(tmp_path, monkeypatch):
    """A cache of the first 4096 images (the full set is 1.5 s to render, 377 MB packed)."""
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(dsprites, "_load_tfds_packed", lambda data_dir: None)
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 4096)
    monkeypatch.setattr(dsprites, "TEST_SIZE", 100)
    full = dsprites.render_all_packed
    monkeypatch.setattr(dsprites, "render_all_packed", lambda: full(4096))
    return tmp_path


def test_cache_is_written_once_and_reused(small_grid, monkeypatch):
    first = dsprites.load_packed()
    path = dsprites.cache_path()
    assert os.path.dirname(path) == os.path.join(str(small_grid), "dsprites")
    assert dsprites.checksum() in os.path.basename(path)
    assert [f for f in os.listdir(os.path.dirname(path))] == [os.path.basename(path)]
    monkeypatch.setattr(dsprites, "render_all_packed", lambda: pytest.fail("re-rendered"))
    np.testing.assert_array_equal(dsprites.load_packed(), first)
    # A file of the right name but the wrong content (here: size) is rendered again.
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 2048)
    monkeypatch.setattr(dsprites, "render_all_packed", lambda: first[:2048])
    np.testing.assert_array_equal(dsprites.load_packed(), first[:2048])
    with np.load(path) as f:
        assert f["images"].shape == (2048, 64, 8)


def test_load_yields_images_with_factor_classes_and_values(small_grid):
    ds = data.load("dsprites", "train", batch_size=512, shuffle=False, with_factors=True)
    x, factors = next(iter(ds))
    assert x.shape == (512, 64, 64, 1) and x.dtype.name == "float32"
    assert set(np.unique(x.numpy())) == {0.0, 1.0}
    classes = dsprites.latents_classes(np.arange(512))
    np.testing.assert_array_equal(x.numpy()[..., 0], dsprites.render(classes))
    np.testing.assert_array_equal(factors["classes"].numpy(), classes[:, 1:])
    np.testing.assert_allclose(factors["values"].numpy(),
                               dsprites.latents_values(classes)[:, 1:], rtol=1e-6)
    test_x, labels = next(iter(data.load("dsprites", "test", 100, with_labels=True)))
    indices = dsprites.split_indices("test")
    assert len(indices) == 100 and np.all(np.diff(indices) > 0)
    np.testing.assert_array_equal(test_x.numpy()[..., 0],
                                  dsprites.render(dsprites.latents_classes(indices)))
    np.testing.assert_array_equal(labels.numpy(), dsprites.latents_classes(indices)[:, 1])
    images, labels = data.load_arrays("dsprites", "test")
    assert images.shape == (100, 64, 64, 1) and set(np.unique(images)) == {0, 255}


def test_ground_truth_source_renders_the_grid_images():
    source = dsprites.DSprites()
    rng = np.random.default_rng(0)
    factors = source.sample_factors(50, rng)
    assert factors.shape == (50, 5) and np.all(factors < np.array(source.factor_sizes))
    x = source.sample_observations_from_factors(factors, rng)
    classes = np.concatenate([np.zeros((50, 1), int), factors], axis=1)
    np.testing.assert_array_equal(x[..., 0], dsprites.render(classes))
    with pytest.raises(ValueError, match=r"shape \[N, 5\]"):
        source.sample_observations_from_factors(np.zeros((2, 6), int), rng)


def test_prepared_tfds_dsprites_is_used_in_release_order(tmp_path, monkeypatch):
    """TFDS stores dSprites shuffled, with label_* features; load_packed restores the order."""
    import types

    import tensorflow_datasets as tfds

    from tfvae._tf import tf
    monkeypatch.setenv("TFVAE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(dsprites, "NUM_IMAGES", 4096)
    (tmp_path / "dataset_info.json").write_text("{}")
    order = np.random.default_rng(0).permutation(4096)
    classes = dsprites.latents_classes(order)
    images = dsprites.render(classes)[..., None]
    images[:, 0, 0] = 1  # mark the pixels as TFDS's so that a re-render would be caught
    features = {"image": images, **{f"label_{k}": classes[:, i + 1] for i, k in enumerate(
        ("shape", "scale", "orientation", "x_position", "y_position"))}}
    builder = types.SimpleNamespace(
        data_dir=str(tmp_path),
        as_dataset=lambda split, shuffle_files: tf.data.Dataset.from_tensor_slices(features))
    monkeypatch.setattr(tfds, "builder", lambda name, data_dir=None: builder)
    packed = dsprites.load_packed()
    expected = dsprites.render(dsprites.latents_classes(np.arange(4096)))
    expected[:, 0, 0] = 1
    np.testing.assert_array_equal(np.unpackbits(packed, axis=-1), expected)
    assert not (tmp_path / "cache").exists()  # nothing rendered, nothing cached


@pytest.fixture
def packed_stand_in(monkeypatch):
    """A 2048-image stand-in for the 737,280-image grid: its first images, packed as the
    real cache is, and 64 of them as the test split."""
    packed = dsprites.render_all_packed(2048)
    test_images = np.unpackbits(packed[:64], axis=-1)[..., None] * np.uint8(255)
    monkeypatch.setattr(dsprites, "load_packed", lambda data_dir=None: packed)
    monkeypatch.setattr(dsprites, "split_indices", lambda split: np.arange(2048))
    real_load = data.load_arrays
    monkeypatch.setattr(data, "load_arrays", lambda name, split, **kw: (
        (test_images, np.zeros(64, np.int64)) if name == "dsprites" else
        real_load(name, split, **kw)))
    return packed


def test_the_train_app_keeps_dsprites_packed_and_unpacks_each_batch(packed_stand_in):
    # The app holds the images packed and feeds exactly the unpacked pixels.
    from tfvae._tf import tf
    from tfvae.apps import train as train_app
    from tfvae.apps._train_data import Data
    packed = packed_stand_in
    cfg, recipe, _ = train_app.parse(["--config", "apps/dsprites_vae.toml", "--batch-size",
                                      "32", "--validation-split", "100", "--seed", "4"])
    run = Data(cfg, recipe.default("likelihood"))
    assert run.image_shape == (64, 64, 1) and run._train.shape == (1948, 64, 8)  # noqa: SLF001
    assert run._train.dtype == tf.uint8  # noqa: SLF001
    rows = run._train.numpy()  # noqa: SLF001
    batch = next(iter(run.epoch(0))).numpy()
    order = tf.argsort(tf.random.stateless_uniform([1948], seed=[4, 0])).numpy()[:32]
    np.testing.assert_array_equal(batch, np.unpackbits(rows[order], axis=-1)[..., None])
    unpacked = np.unpackbits(packed, axis=-1)
    held = run.validation_images[..., 0]
    assert held.shape == (100, 64, 64) and set(np.unique(held)) <= {0.0, 1.0}
    assert all(any(np.array_equal(h, u) for u in unpacked) for h in held[:5])


@pytest.mark.slow
def test_a_dsprites_run_ends_with_disentanglement_scores_in_tensorboard(packed_stand_in, tmp_path,
                                                                        monkeypatch):
    import json

    from tfvae._tf import tf
    from tfvae.apps import _disentanglement
    from tfvae.apps import train as train_app
    monkeypatch.setattr(_disentanglement, "QUICK", {
        "mig": {"num_points": 300}, "factor_vae_score": {"num_train": 40, "num_eval": 20,
                                                         "batch_size": 16},
        "dci": {"num_train": 200, "num_test": 100}, "sap": {"num_train": 200, "num_test": 100},
        "mig_chen": {"num_points": 600, "num_samples": 100}})
    assert train_app.main(["--config", "apps/dsprites_vae.toml", "--epochs", "1",
                           "--steps-per-epoch", "2", "--batch-size", "16", "--validation-split",
                           "64", "--no-jit", "--verbose", "0", "--export-iwae-samples", "2",
                           "--logdir", str(tmp_path / "runs"), "--export-dir",
                           str(tmp_path / "saved"), "--run-name", "d"]) == 0
    meta = json.loads((tmp_path / "saved" / "d" / "metadata.json").read_text())
    scores = meta["metrics"]["disentanglement"]["scores"]
    assert {"mig", "factor_vae_score", "dci_disentanglement", "sap"} <= set(scores)
    tags = {}
    events = tmp_path / "runs" / "d" / "validation"
    for name in os.listdir(events):
        for event in tf.compat.v1.train.summary_iterator(str(events / name)):
            for v in event.summary.value:
                if v.tag.startswith("6_disentanglement/"):
                    tags[v.tag] = float(tf.make_ndarray(v.tensor))
    assert tags["6_disentanglement/mig"] == pytest.approx(scores["mig"])
