"""Imports every built-in component module by name, so that registration is explicit, plus the
plugins of the `trainer.plugins` entry-point group."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from trainer.plugins import load_entry_point

BUILTIN_MODULES = (
    "trainer.data.shapes",
    "trainer.data.image_folder",
    "trainer.data.coco",
    "trainer.data.yolo",
    "trainer.data.mask_folder",
    "trainer.data.transforms",
    "trainer.models.backbones.torchvision_backbones",
    "trainer.models.backbones.cspdarknet",
    "trainer.models.backbones.timm_backbone",
    "trainer.models.necks.fpn",
    "trainer.models.necks.pafpn",
    "trainer.models.heads.fc",
    "trainer.models.heads.segmentation",
    "trainer.models.heads.anchor_free_decoupled",
    "trainer.models.heads.anchor_decoupled",
    "trainer.models.full.pidnet",
    "trainer.losses.cross_entropy",
    "trainer.losses.focal",
    "trainer.losses.yolox",
    "trainer.losses.retinanet",
    "trainer.losses.pidnet",
    "trainer.engine.optimizers",
    "trainer.engine.schedulers",
)

_loaded = False


def load_builtin_components() -> None:
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    for plugin in entry_points(group="trainer.plugins"):
        problem = load_entry_point(plugin)
        if problem is not None:
            from trainer.recipe.errors import RecipeError, RecipeIssue

            raise RecipeError([RecipeIssue((), problem, where="installed plugins")])
    _loaded = True
