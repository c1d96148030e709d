"""Command-line apps: `python -m tfvae.apps.train`, `.sample`, `.tensorboard` (and `.evaluate`).

Shared plumbing (one-line errors with exit code 2, TOML presets) is in `tfvae.apps._cli`.
"""
