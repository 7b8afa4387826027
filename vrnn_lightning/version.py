"""The package version (pyproject.toml reads it; checkpoints and model cards record it)."""

__version__ = "0.1.0"
