"""The contract every registered component inherits, and the one-file extension point.

For every registered model, posterior, likelihood and term: build it through the train
app's recipe, fit two steps on `synthetic`, export, reload the SavedModel in a fresh
process without tfvae, and evaluate it. A new component gets these tests by registering.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tfvae
from tfvae import recipe as recipe_lib
from tfvae._tf import tfk
from tfvae.registry import LIKELIHOODS, MODELS, POSTERIORS, TERMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = {"latent_dim": 3, "hidden_units": [16]}
#: components that need a partner to make a trainable model
POSTERIOR_MODEL = {"deterministic": "ae", "implicit": "avb", "implicit_basis": "avb"}
TERM_EXTRA = {"iwae": {"model": {"num_samples": 2}}}


def _cases():
    cases = [pytest.param({"model": {"name": m}}, id=f"model-{m}") for m in MODELS.names()]
    cases += [pytest.param({"model": {"name": POSTERIOR_MODEL.get(p, "vae")},
                            "posterior": {"name": p}}, id=f"posterior-{p}")
              for p in POSTERIORS.names()]
    cases += [pytest.param({"model": {"name": "vae"}, "likelihood": {"name": lik},
                            "binarize": "none"}, id=f"likelihood-{lik}")
              for lik in LIKELIHOODS.names()]
    for t in TERMS.names():
        if t == "avb":
            tree = {"model": {"name": "avb"}}
        else:
            extra = TERM_EXTRA.get(t, {})
            tree = {"model": {"name": "vae", **extra.get("model", {})},
                    "terms": ["reconstruction", {"name": t, "weight": 0.5}]
                    if t != "reconstruction" else ["reconstruction", "kl"]}
        cases.append(pytest.param(tree, id=f"term-{t}"))
    return cases


RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert "tfvae" not in sys.modules
    x = tf.constant(np.load(sys.argv[1]))
    out = {}
    for path in sys.argv[2:]:
        m = tf.saved_model.load(path)
        enc = {k: v.numpy().tolist() for k, v in m.signatures["encode"](x=x).items()}
        ll = (m.signatures["log_likelihood"](x=x)["log_likelihood"].numpy().tolist()
              if "log_likelihood" in m.signatures else None)
        rec = m.signatures["reconstruct"](x=x)["reconstruction"].numpy()
        out[path] = {"encode": sorted(enc), "z": enc["z"], "ll": ll,
                     "rec_finite": bool(np.isfinite(rec).all())}
    print(json.dumps(out))
""")


def _build(tree):
    """The case's model, built through the recipe, and its training images."""
    tree = json.loads(json.dumps(tree))
    binarize = tree.pop("binarize", "static")
    tree["model"].update(SMALL)
    x, _ = tfvae.data.load_arrays("synthetic", "train")
    x = tfvae.data.to_float(x[:64], None if binarize == "none" else "static").numpy()
    return recipe_lib.Recipe.from_tree(tree).build(x.shape[1:], seed=0, dataset_size=64), x


def _train_and_export(model, x, path):
    """Fits two steps on synthetic, exports to `path`."""
    model.compile(optimizer=tfk.optimizers.Adam(1e-3))
    history = model.fit(x, batch_size=32, epochs=1, verbose=0, shuffle=False)
    tfvae.export.save(model, path, iwae_samples=4)
    return {"model": model, "path": path, "x": x[:5], "history": history.history}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case trained and exported, then reloaded together in one fresh process.

    A case whose model equals an earlier case's (the default posterior, a term that a
    model's recipe already trains) shares that case's run instead of training it again.
    """
    root = tmp_path_factory.mktemp("contract")
    runs, by_config, by_term = {}, {}, {}
    for case in _cases():
        model, x = _build(case.values[0])
        term = case.id[len("term-"):] if case.id.startswith("term-") else None
        key = json.dumps(model.get_config(), sort_keys=True)
        if term in by_term or key in by_config:
            runs[case.id] = runs[by_term[term] if term in by_term else by_config[key]]
            continue
        runs[case.id] = _train_and_export(model, x, str(root / case.id))
        by_config[key] = case.id
        for t in model.terms:
            by_term.setdefault(t.registry_name, case.id)
    x = next(iter(runs.values()))["x"]
    np.save(root / "x.npy", x)
    paths = sorted({r["path"] for r in runs.values()})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(root / "x.npy"), *paths],
                          capture_output=True, text=True, env=env, cwd=str(root), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    for run in runs.values():
        run["reloaded"] = reloaded[run["path"]]
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("case", [c.id for c in _cases()])
def test_component_trains_exports_reloads_and_evaluates(case, exported):
    from tfvae.apps import evaluate as evaluate_app
    run = exported[case]
    model, got = run["model"], run["reloaded"]
    if case.startswith("term-"):  # trained in this run, on its own or in a model's recipe
        assert case[len("term-"):] in [t.registry_name for t in model.terms]
    assert int(model.optimizer.iterations.numpy()) == 2
    assert all(np.isfinite(v[-1]) for v in run["history"].values()), run["history"]
    assert "z" in got["encode"] and np.asarray(got["z"]).shape == (5, 3)
    assert got["rec_finite"]
    if model.posterior.has_density:
        assert "log_q" in got["encode"]
    # A model may say why it has no log p(x) (VAE-GAN: a feature likelihood, no pixel density).
    has_ll = model.posterior.has_proposal and not getattr(model, "log_likelihood_unavailable",
                                                          None)
    assert (got["ll"] is not None) == has_ll
    if got["ll"] is not None:
        assert np.all(np.isfinite(got["ll"])) and np.all(np.asarray(got["ll"]) < 0)
    # The export's metadata rebuilds the same model (every component's config round-trips).
    rebuilt, _ = evaluate_app.load(run["path"])
    assert rebuilt.get_config() == model.get_config()
    for a, b in zip(rebuilt.variables, model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    numbers, _, _ = evaluate_app.evaluate(rebuilt, run["x"], np.zeros(5), num_samples=4,
                                          batch_size=5, seed=0)
    assert ("nll" in numbers) == has_ll
    assert all(np.isfinite(v) for v in numbers.values() if isinstance(v, float))


EXTERNAL = textwrap.dedent('''
    """A posterior defined outside tfvae: q(z|x) = N(mu(x), s^2 I) with one learned s."""
    from tfvae._tf import tf, tfd, tfk
    from tfvae.posteriors.base import Posterior
    from tfvae.registry import POSTERIORS


    @POSTERIORS.register("isotropic_test")
    class Isotropic(Posterior):
        """Args:
            init_scale: s at initialization.
        """

        def __init__(self, latent_dim, init_scale=1.0, validate_args=False, **kwargs):
            super().__init__(latent_dim, validate_args=validate_args, **kwargs)
            self.init_scale = float(init_scale)
            self.loc_layer = tfk.layers.Dense(latent_dim)
            self.log_scale = tf.Variable(tf.math.log(self.init_scale), name="log_scale")

        def call(self, h):
            loc = self.loc_layer(h)
            return tfd.MultivariateNormalDiag(loc, tf.exp(self.log_scale) * tf.ones_like(loc))
''')

RUN_WITH_PLUGIN = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import isotropic_posterior  # registers "isotropic_test"
    from tfvae.apps import train
    sys.exit(train.main(sys.argv[2:]))
""")


@pytest.mark.slow
def test_a_posterior_in_a_test_file_trains_exports_and_evaluates(tmp_path):
    (tmp_path / "isotropic_posterior.py").write_text(EXTERNAL)
    (tmp_path / "preset.toml").write_text(textwrap.dedent("""
        dataset = "synthetic"
        limit = 64
        test_limit = 32
        batch_size = 32
        epochs = 1
        jit = false
        verbose = 0
        [model]
        latent_dim = 3
        hidden_units = [16]
        [posterior]
        name = "isotropic_test"
        init_scale = 0.5
    """))
    proc = subprocess.run([sys.executable, "-c", RUN_WITH_PLUGIN, str(tmp_path), "--config",
                           str(tmp_path / "preset.toml"), "--logdir", str(tmp_path / "runs"),
                           "--export-dir", str(tmp_path / "saved"), "--run-name", "iso"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "saved" / "iso" / "metadata.json").read_text())
    assert meta["model"]["config"]["posterior"] == {"name": "isotropic_test", "init_scale": 0.5}
    # A key the constructor does not take is refused with the allowed ones listed.
    (tmp_path / "bad.toml").write_text('[posterior]\nname = "isotropic_test"\nscale = 2\n')
    bad = subprocess.run([sys.executable, "-c", RUN_WITH_PLUGIN, str(tmp_path), "--config",
                          str(tmp_path / "bad.toml"), "--dry-run"], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert bad.returncode == 2
    assert "Unknown key 'scale' in [posterior] (isotropic_test); allowed: ['init_scale']" \
        in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(p for p in os.listdir(os.path.join(ROOT, "apps"))
                                          if p.endswith(".toml")))
def test_every_preset_trains_a_short_epoch_and_its_export_evaluates(preset, tmp_path):
    from tfvae.apps import evaluate as evaluate_app
    from tfvae.apps import train as train_app
    code = train_app.main(["--config", os.path.join(ROOT, "apps", preset), "--dataset",
                           "synthetic", "--limit", "64", "--test-limit", "32", "--epochs", "1",
                           "--batch-size", "32", "--latent-dim", "3", "--hidden-units", "8", "16",
                           "--no-jit", "--verbose", "0", "--logdir", str(tmp_path / "runs"),
                           "--export-dir", str(tmp_path / "saved"), "--run-name", "p",
                           "--export-iwae-samples", "4"])
    assert code == 0
    code = evaluate_app.main(["--model", str(tmp_path / "saved" / "p"), "--num-samples", "4",
                              "--num-examples", "8", "--out", str(tmp_path / "eval")])
    assert code == 0
    if preset == "vae.toml":  # a run directory evaluates too (its latest checkpoint)
        assert evaluate_app.main(["--model", str(tmp_path / "runs" / "p"), "--num-samples",
                                  "4", "--num-examples", "8", "--out",
                                  str(tmp_path / "ev2")]) == 0


def test_set_paths_reach_components_and_unknown_keys_list_the_allowed():
    from tfvae.apps import _cli
    from tfvae.apps import train as train_app
    _, recipe, _ = train_app.parse(["--set", "posterior.offdiag_scale=1e-2", "--set",
                                    "model.latent_dim=4", "--model", "beta_vae", "--beta", "2"])
    assert recipe.tables["posterior"] == {"name": "full_covariance", "offdiag_scale": 0.01}
    assert recipe.model == {"latent_dim": 4, "beta": 2.0}
    model = recipe.build((4, 4, 1), seed=0, dataset_size=10)
    assert model.posterior.offdiag_scale == 0.01 and model.terms[1].weight == 2.0
    with pytest.raises(_cli.UsageError, match=r"Unknown key 'offdiag' in \[posterior\] "
                       r"\(full_covariance\); allowed: \['init_scale', 'offdiag_scale'\]"):
        train_app.parse(["--set", "posterior.offdiag=1"])
    with pytest.raises(_cli.UsageError, match="derives its own objective terms"):
        train_app.parse(["--model", "beta_tcvae", "--set", "terms.0.name=kl"])
