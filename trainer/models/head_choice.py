"""Moved to trainer/head_choice.py (the recipe validator needs it without importing the models)."""

from trainer.head_choice import HeadChoiceError, choose_head, compatible_heads

__all__ = ["HeadChoiceError", "choose_head", "compatible_heads"]
