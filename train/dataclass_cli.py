"""An argparse command line generated from a dataclass: one option per field, its help the field's
docstring, so that a new field cannot reach the command line undocumented.

A field's ``metadata`` may set ``flag`` (the option's name without dashes, e.g. ``source-weight`` for
the ``source_weights`` dict), ``metavar`` and ``choices``. Types: ``str``, ``int``, ``float``, ``X | None``,
``bool`` (a switch), ``list[X]`` (one or more values; required when the field has no default) and
``dict[str, X]`` (a repeated ``KEY=VALUE`` option).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (the string literal after ``name: type = ...``),
    read from the class's source, with its whitespace collapsed."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef)).body
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def build_parser(cls: type, **parser_kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with one option per field of the dataclass ``cls``. Raises ``TypeError``
    for a field without a docstring or of a type it cannot parse."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter, **parser_kwargs)
    for f in dataclasses.fields(cls):
        if not docs.get(f.name):
            raise TypeError(f"{cls.__name__}.{f.name} has no docstring: document it under the field")
        flag = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        kw: dict[str, Any] = {"dest": f.name, "help": docs[f.name].replace("%", "%%")}
        for key in ("metavar", "choices"):
            if key in f.metadata:
                kw[key] = f.metadata[key]
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            kw["required"] = True
        else:
            kw["default"] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if kw["default"] not in (None, [], {}, False):
                kw["help"] += f" (default: {kw['default']})".replace("%", "%%")
        tp = _unwrap_optional(hints[f.name])
        origin = typing.get_origin(tp)
        if tp is bool:
            kw["action"] = "store_true" if kw.get("default") is False else argparse.BooleanOptionalAction
        elif origin is list:
            (item,) = typing.get_args(tp)
            kw.update(type=item, nargs="+" if required else "*")
        elif origin is dict:
            kw.update(action="append", type=_key_value(typing.get_args(tp)[1]), default=None)
            kw["help"] += " (repeat the option for several)"
        elif tp in (str, int, float):
            kw["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command line for type {tp!r}")
        parser.add_argument(flag, **kw)
    return parser


def _key_value(value_type: type):
    def parse(text: str) -> tuple[str, Any]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
        try:
            return key, value_type(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a {value_type.__name__}") from None
    return parse


def parse_dataclass(cls: type[T], argv: list[str] | None = None, **parser_kwargs: Any) -> T:
    """``cls`` filled from the command line (``argv``, default ``sys.argv[1:]``)."""
    args = vars(build_parser(cls, **parser_kwargs).parse_args(argv))
    hints = typing.get_type_hints(cls)
    for name, value in args.items():
        if typing.get_origin(_unwrap_optional(hints[name])) is dict:
            args[name] = dict(value or [])
    return cls(**args)
