"""Registries of backbones and heads by name, in the manner of timm's model registry."""
from __future__ import annotations

from typing import Callable

_BACKBONES: dict[str, Callable[..., object]] = {}
_HEADS: dict[str, Callable[..., object]] = {}


def _register(table: dict[str, Callable[..., object]], kind: str, name: str):
    def deco(fn):
        if name in table:
            raise ValueError(f"{kind} {name!r} registered twice")
        table[name] = fn
        return fn
    return deco


def register_backbone(name: str):
    return _register(_BACKBONES, "backbone", name)


def register_head(name: str):
    return _register(_HEADS, "head", name)


def _lookup(table: dict[str, Callable[..., object]], kind: str, name: str) -> Callable[..., object]:
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; available: {sorted(table)}")
    return table[name]


def get_backbone(name: str) -> Callable[..., object]:
    return _lookup(_BACKBONES, "backbone", name)


def get_head(name: str) -> Callable[..., object]:
    return _lookup(_HEADS, "head", name)


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def list_heads() -> list[str]:
    return sorted(_HEADS)
