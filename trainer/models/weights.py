"""The one weight loader: a file or a state dict into a model, by name and shape, with a report.

Sources: a trainer checkpoint (its EMA weights when `prefer_ema` and it kept them), ``{"model": ...}``
or ``{"state_dict": ...}`` containers, bare state dicts, and the official formats of
`trainer.models.official` (recognised by their keys). Files are read with `trainer.files.load_torch`
(``weights_only=True``).

``strict=True`` (evaluate, predict, export, a backbone's ``pretrained`` file): every tensor of the
model must come from the source with its shape, and every source tensor must be used, except as
``allow_left_out`` allows: True, any; a tuple of key prefixes, the tensors outside the part of the
file that its format maps onto this model (the neck and head of a detector checkpoint loaded into
its backbone) and those under the prefixes (a classifier the backbone drops). Otherwise nothing is
loaded.
``strict=False`` (fine-tuning): tensors that fit load; tensors whose shape differs only in the first
dimension (class predictions for another class count) and tensors the source lacks keep their
initial values ("re-initialised"); source tensors the model lacks are "left out". A source where
nothing fits, or a tensor whose shape differs beyond the first dimension (a model of another size),
is a `WeightsError`. BatchNorm ``num_batches_tracked`` counters are never required.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.files import FileReadError, load_torch
from trainer.models.official import KEY_MAPS, KeyMap


class WeightsError(ValueError):
    """Weights that cannot be read or do not fit the model; the message names the source and the keys."""


@dataclass(frozen=True)
class LoadReport:
    """What one `load_weights` call did: model tensor names loaded and re-initialised, and the
    source's tensor names left out (BatchNorm counters not listed)."""

    source: str
    format: str
    loaded: tuple[str, ...]
    reinitialised: tuple[str, ...]
    left_out: tuple[str, ...]

    def summary(self) -> str:
        total = len(self.loaded) + len(self.reinitialised)
        parts = [f"weights {self.source} ({self.format}): loaded {len(self.loaded)} of {total} tensors"]
        parts.append(f"re-initialised {len(self.reinitialised)}{_examples(self.reinitialised)}")
        parts.append(f"left out {len(self.left_out)}{_examples(self.left_out)}")
        return "; ".join(parts)


def _examples(keys: tuple[str, ...] | list[str], limit: int = 4) -> str:
    if not keys:
        return ""
    more = f", ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return " (" + ", ".join(keys[:limit]) + more + ")"


def _is_counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def read_state_dict(
    source: Path | str | Mapping[str, Any], *, prefer_ema: bool = True, label: str | None = None
) -> tuple[dict, str]:
    """The tensors of a file or loaded object, unwrapped from a checkpoint container, and the
    container's description."""
    name = label or ("(a state dict)" if isinstance(source, Mapping) else str(source))
    if not isinstance(source, Mapping):
        try:
            source = load_torch(Path(source).expanduser())
        except FileReadError as error:
            raise WeightsError(f"weights file {error}") from None
    if not isinstance(source, Mapping):
        raise WeightsError(f"weights {name}: holds a {type(source).__name__}, not a state dict")
    container = "state dict"
    if prefer_ema and isinstance(source.get("ema"), Mapping) and isinstance(source.get("model"), Mapping):
        source = {k.removeprefix("module."): v for k, v in source["ema"].items() if k != "n_averaged"}
        container = "trainer checkpoint, EMA weights"
    else:
        for key in ("model", "state_dict"):
            if isinstance(source.get(key), Mapping):
                container = "trainer checkpoint" if "class_names" in source else f"'{key}' entry"
                source = source[key]
                break
    tensors = {str(k): v for k, v in source.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"weights {name}: no tensors in it (keys e.g. {sorted(map(str, source))[:3]})")
    return tensors, container


def _fits(file_shape: torch.Size, model_shape: torch.Size) -> str:
    """'same', 'first' (only the first dimension differs: class predictions) or 'other'."""
    if file_shape == model_shape:
        return "same"
    if len(file_shape) == len(model_shape) and len(file_shape) >= 1 and file_shape[1:] == model_shape[1:]:
        return "first"
    return "other"


def _renamed(tensors: dict, key_map: KeyMap, renames: Mapping[str, str]) -> dict[str, str]:
    """model-side name -> file name under one key map."""
    result: dict[str, str] = {}
    for file_key in tensors:
        mapped = key_map.rename(file_key)
        if mapped is not None:
            result.setdefault(renames.get(mapped, mapped), file_key)
    return result


def _choose_map(tensors: dict, own: dict, renames: Mapping[str, str]) -> tuple[KeyMap, dict[str, str]]:
    """The key map under which the most model tensors find a file tensor of a fitting shape."""
    best: tuple[int, KeyMap, dict[str, str]] | None = None
    for key_map in KEY_MAPS:
        names = _renamed(tensors, key_map, renames)
        score = sum(1 for k, f in names.items() if k in own and _fits(tensors[f].shape, own[k].shape) != "other")
        if best is None or score > best[0]:
            best = (score, key_map, names)
    assert best is not None
    return best[1], best[2]


def _nothing_fits(name: str, model: nn.Module, tensors: dict, own: dict) -> WeightsError:
    hints = []
    for file_key in sorted(tensors)[:3]:
        close = difflib.get_close_matches(file_key, list(own), n=1, cutoff=0.0)
        hints.append(f"'{file_key}' (closest expected: '{close[0]}')" if close else f"'{file_key}'")
    return WeightsError(
        f"weights {name}: no tensor fits {type(model).__name__} by name and shape; file keys e.g. "
        f"{', '.join(hints)}; expected keys e.g. {', '.join(sorted(own)[:3])}. A file for another model?"
    )


def _unexpected(left_out: list[str], key_map: KeyMap, allow_left_out: bool | tuple[str, ...]) -> list[str]:
    if allow_left_out is True:
        return []
    if allow_left_out is False:
        return left_out
    mapped = {f: key_map.rename(f) for f in left_out}
    return [f for f in left_out if mapped[f] is not None and not mapped[f].startswith(allow_left_out)]


def load_weights(
    model: nn.Module,
    source: Path | str | Mapping[str, Any],
    *,
    prefer_ema: bool = True,
    strict: bool = True,
    allow_left_out: bool | tuple[str, ...] = False,
    renames: Mapping[str, str] | None = None,
    label: str | None = None,
) -> LoadReport:
    """Load `source` into `model` (see the module docstring for `strict` and `allow_left_out`).
    `renames` maps file names (after the format's key map) to the model's; `label` names the source
    in messages (default: its path). Raises `WeightsError` when the source cannot be read or does
    not fit; then the model is left as it was."""
    name = label or ("(a state dict)" if isinstance(source, Mapping) else str(source))
    tensors, container = read_state_dict(source, prefer_ema=prefer_ema, label=name)
    own = model.state_dict()
    key_map, names = _choose_map(tensors, own, renames or {})
    loaded = [k for k in own if k in names and _fits(tensors[names[k]].shape, own[k].shape) == "same"]
    first = [k for k in own if k in names and _fits(tensors[names[k]].shape, own[k].shape) == "first"]
    other = [k for k in own if k in names and _fits(tensors[names[k]].shape, own[k].shape) == "other"]
    missing = [k for k in own if k not in names and not _is_counter(k)]
    used = {names[k] for k in loaded + first + other}
    left_out = [f for f in tensors if f not in used and not _is_counter(f)]
    shapes = [f"{k}: file {tuple(tensors[names[k]].shape)} vs model {tuple(own[k].shape)}" for k in first + other]
    if not loaded:
        raise _nothing_fits(name, model, tensors, own)
    if strict:
        unexpected = _unexpected(left_out, key_map, allow_left_out)
        if missing or first or other or unexpected:
            problems = [f"weights {name} do not fit {type(model).__name__}"]
            for kind, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
                if keys:
                    problems.append(f"{len(keys)} tensors {kind}{_examples(keys, 3)}")
            raise WeightsError("; ".join(problems))
    elif other:
        raise WeightsError(
            f"weights {name} are for a model of another size: {len(other)} tensors of another shape"
            f"{_examples(shapes[len(first):], 3)}"
        )
    model.load_state_dict({k: key_map.adapt(names[k], tensors[names[k]]) for k in loaded}, strict=False)
    loaded = [k for k in loaded if not _is_counter(k)]
    format_name = key_map.name if key_map.name != "state dict" else container
    return LoadReport(
        source=name, format=format_name, loaded=tuple(loaded), reinitialised=tuple(first + missing),
        left_out=tuple(left_out),
    )
