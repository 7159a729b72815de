"""The one comparison of recipes (as plain dicts): what differs (`differences`), and where (`changed_paths`)."""

from __future__ import annotations

from typing import Any

from trainer.recipe.errors import KeyPath

NAME_KEYS = ("name", "criterion")


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in NAME_KEYS)


def differences(value: Any, default: Any, *, whole_components: bool = True) -> Any:
    """The parts of `value` that differ from `default`; None when nothing differs.

    Mappings are compared key by key (as recipes merge); lists and scalars are kept whole, and so
    are named components (a mapping with `name` or `criterion`) unless `whole_components` is False;
    the result, merged over `default`, gives `value` back."""
    component = whole_components and _is_component(value) and value != default
    if isinstance(value, dict) and isinstance(default, dict) and not component:
        found = {}
        for key, item in value.items():
            if key not in default:
                found[key] = item
                continue
            changed = differences(item, default[key], whole_components=whole_components)
            if changed is not None:
                found[key] = changed
        return found or None
    return None if value == default else value


def changed_paths(left: dict[str, Any], right: dict[str, Any]) -> list[KeyPath]:
    """The key paths of the values that differ between two recipes (either way), in reading order."""
    paths: list[KeyPath] = []
    for found in (differences(left, right, whole_components=False), differences(right, left, whole_components=False)):
        paths += [path for path in (_leaf_paths(found, ()) if found else []) if path not in paths]
    return paths


def _leaf_paths(value: Any, path: KeyPath) -> list[KeyPath]:
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in _leaf_paths(item, path + (key,))]
    return [path]
