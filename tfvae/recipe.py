"""A model recipe: the nested preset's model part, checked against the registries.

```toml
epochs = 10                       # run settings at the top level (tfvae.config)
[model]                           # a registered model (recipe) and its arguments
name = "beta_tcvae"
latent_dim = 32
tc_weight = 6.0
[posterior]                       # a registered posterior and its arguments
name = "full_covariance"
offdiag_scale = 1e-3
[likelihood]
name = "bernoulli"
[prior]
name = "standard_normal"
[[terms]]                         # the objective, for models that take `terms` ("vae")
name = "kl"
weight = { schedule = "linear", start = 0.0, end = 1.0, steps = 1000 }
```
Any argument can also be set as `path=value` (`posterior.offdiag_scale=1e-2`,
`model.latent_dim=16`, `terms.1.weight=4`, `epochs=3`), the value read as a TOML literal
(a bare word is a string). Keys a constructor does not take are one-line errors that list
the allowed ones. Arguments the app supplies (the image shape, the seed, the training
set's size) are not settable.
"""

import hashlib
import json
import tomllib

from tfvae import components
from tfvae.registry import LIKELIHOODS, MODELS, POSTERIORS, PRIORS, TERMS

TABLES = {"posterior": POSTERIORS, "likelihood": LIKELIHOODS, "prior": PRIORS}
#: model arguments the train app supplies from the data and the run settings
SUPPLIED = ("input_shape", "seed", "dataset_size", "encoder", "decoder")
#: model arguments set through their own tables
COMPONENTS = ("posterior", "likelihood", "prior", "terms")


def parse_value(text):
    """A `--set` value: a TOML literal (1e-3, true, [512, 256], "x"), else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def model_arguments(model_cls):
    """{argument: default} a `[model]` table may set for `model_cls`."""
    return components.parameters(
        model_cls, exclude=SUPPLIED + COMPONENTS + tuple(getattr(model_cls, "derived", ())))


class Recipe:
    """The resolved model part of a run: a model class and the specs of its components.

    Args:
        model: {"name": ..., **arguments}; name defaults to "vae".
        posterior, likelihood, prior: specs ({"name": ..., **arguments}) or None for the
            model's defaults.
        terms: a list of term specs, or None for the model's own objective.

    Raises:
        ValueError: unknown names, keys the constructors do not take, or `terms` for a
            model that derives its own.
    """

    def __init__(self, model=None, posterior=None, likelihood=None, prior=None, terms=None):
        model = dict(model or {})
        self.model_cls = MODELS.get(model.pop("name", "vae"))
        self.name = self.model_cls.registry_name
        allowed = model_arguments(self.model_cls)
        for key in model:
            if key not in allowed:
                raise ValueError(f"Unknown key {key!r} in [model] ({self.name}); allowed: "
                                 f"{sorted(allowed)}.")
        self.model = model
        self.tables = {}
        for table, registry in TABLES.items():
            spec = {"posterior": posterior, "likelihood": likelihood, "prior": prior}[table]
            if spec is None:
                continue
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            default = components.parameters(self.model_cls).get(table)
            if "name" not in spec and isinstance(default, str):
                spec = {"name": default, **spec}  # arguments for the model's default
            if "name" not in spec:
                raise ValueError(f"[{table}] needs a `name`, one of {registry.names()}.")
            cls = registry.get(spec["name"])
            components.check_keys(cls, [k for k in spec if k != "name"],
                                  f"[{table}] ({spec['name']})",
                                  exclude=("latent_dim", "dataset_size"))
            self.tables[table] = spec
        if terms is not None:
            if "terms" in getattr(self.model_cls, "derived", ()):
                raise ValueError(f"Model {self.name!r} derives its own objective terms; "
                                 "[[terms]] applies to model 'vae'.")
            terms = [{"name": t} if isinstance(t, str) else dict(t) for t in terms]
            for i, spec in enumerate(terms):
                if "name" not in spec:
                    raise ValueError(f"[[terms]] entry {i} needs a `name`, one of "
                                     f"{TERMS.names()}.")
                components.check_keys(TERMS.get(spec["name"]), [k for k in spec if k != "name"],
                                      f"[[terms]] entry {i} ({spec['name']})",
                                      exclude=("dataset_size",))
        self.terms = terms

    @classmethod
    def from_tree(cls, tree):
        """From a preset's tables: {"model": ..., "posterior": ..., ..., "terms": [...]}."""
        return cls(**{k: tree.get(k) for k in ("model", *COMPONENTS)})

    def default(self, key):
        """The effective constructor argument `key` (the table's, else the model's default)."""
        if key in self.tables:
            return self.tables[key]["name"]
        if key in self.model:
            return self.model[key]
        value = components.parameters(self.model_cls).get(key)
        return value if isinstance(value, (str, int, float, tuple, type(None))) else None

    def to_dict(self):
        tree = {"model": {"name": self.name, **self.model}, **self.tables}
        if self.terms is not None:
            tree["terms"] = self.terms
        return components.to_spec(tree)

    def digest(self):
        """6 hex digits of the recipe (for run names)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    def build(self, input_shape, seed, dataset_size=None):
        """The model, untrained, for images of `input_shape`."""
        kwargs = {k: components.from_spec_value(v) for k, v in self.model.items()}
        kwargs.update(self.tables)
        if self.terms is not None:
            kwargs["terms"] = self.terms
        kwargs.update(input_shape=tuple(input_shape), seed=seed)
        if "dataset_size" in components.parameters(self.model_cls):
            kwargs["dataset_size"] = dataset_size
        return self.model_cls(**kwargs)


def set_path(tree, path, value):
    """Sets `tree[a][b]...` for a dotted path ("posterior.offdiag_scale", "terms.1.weight",
    "epochs"); a component table is created on first use.

    Raises:
        ValueError: a path into a list with a bad index, or below a non-table value.
    """
    parts = path.split(".")
    if not all(parts):
        raise ValueError(f"`--set {path}=...`: empty part in the path; write e.g. "
                         "posterior.offdiag_scale=1e-2.")
    node = tree
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"`--set {path}`: {'.'.join(parts[:i])} has {len(node)} "
                                 f"entries (0..{len(node) - 1}); got index {part!r}.")
            node = node[int(part)]
            continue
        if part not in node:
            node[part] = {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise ValueError(f"`--set {path}`: {'.'.join(parts[:i + 1])} is a value, not a "
                             "table.")
    if isinstance(node, list):
        raise ValueError(f"`--set {path}`: name an entry of the list by its index.")
    node[parts[-1]] = value
