"""trainer: a YAML-recipe-driven PyTorch training CLI for vision models."""

__version__ = "0.1.0"
