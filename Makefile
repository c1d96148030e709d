# The two commands of the README. Each one installs what it needs first, so both
# work on a fresh machine: a virtual environment in .venv with tfvae in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install train test test-fast flags clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the default model on the default dataset (Fashion-MNIST).
train: $(STAMP)
	$(PY) -m tfvae.apps.train $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Skip the convergence and end-to-end tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# After changing a component's signature: the train app's flag snapshot (--help without
# importing TensorFlow); tests/test_fast_start.py checks it is current.
flags: $(STAMP)
	$(PY) -m tfvae.apps._train_args

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
