"""Typed settings read from YAML: the one reader behind training configs, degradation presets and the restorer config.

A settings file is YAML read with ``yaml.safe_load`` into a tree of frozen dataclasses. The
pieces, each usable alone:

- :func:`find_yaml` and :func:`shipped_names`: a file by path, or by the name of a YAML file
  shipped in a package folder (``minerrestore/train/configs/``), with close names suggested.
- :func:`read_yaml_chain`: the raw mapping of a file with its ``base: NAME`` chain merged in,
  section by section (:func:`merge`); a circular chain is an error.
- :func:`parse_override` and :func:`apply_overrides`: ``key.path=value`` settings whose value
  is parsed with ``yaml.safe_load`` (never ``eval``/``exec``).
- :func:`build`: a dataclass from a mapping; unknown keys are rejected with their full path
  and the closest known names, missing required keys are named, values are checked against
  the field types and coerced (lists to tuples, integral floats to ints, ``"2e-3"`` to a
  float). A dataclass checks its own values in ``__post_init__`` by raising
  :class:`InvalidSetting` with the field's name; :func:`build` adds the key path.
- :func:`to_dict` and :func:`to_yaml`: the plain form of a dataclass tree (what a run saves).

Every error is a :class:`~minerrestore.errors.ConfigError` naming the key path. Users:
:mod:`minerrestore.train.config` (training configs), :mod:`minerrestore.data.presets`
(degradation presets) and :class:`minerrestore.archs.restorer.RestorerConfig` (architectures,
also as stored in model files). Written for minerrestore (the structure follows STYLE.md
habit 8; BasicSR's option parser, which uses ``eval``/``exec``, was a model of what to avoid).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from minerrestore.errors import ConfigError

BASE_KEY = "base"
"""The top-level key naming the file a settings file inherits from."""


class InvalidSetting(ConfigError):
    """A value a dataclass rejects in its ``__post_init__``, named by its field; :func:`build` prefixes the key path.

    Args:
        key: the field (or key path) holding the value.
        problem: what is wrong with it (``must be odd``).
        hint: how to fix it.
    """

    def __init__(self, key: str, problem: str, hint: str | None = None) -> None:
        super().__init__(f"{key}: {problem}", hint)
        self.key = key
        self.problem = problem


# ---------------------------------------------------------------------------------------------
# files and ``base:`` chains


def shipped_names(folder: Path) -> list[str]:
    """Names of the YAML files shipped in ``folder`` (``tiny``, ``paper512_d`` ...), sorted."""
    return sorted(item.name.removesuffix(".yml") for item in folder.iterdir() if item.name.endswith(".yml"))


def find_yaml(name_or_path: str | Path, folder: Path, relative_to: Path | None = None, kind: str = "config") -> Path:
    """The YAML file for a path (absolute, or relative to ``relative_to``/the cwd) or a name shipped in ``folder``.

    Args:
        name_or_path: a file path, or the name of a file in ``folder`` (with or without ``.yml``).
        folder: the package folder of shipped files.
        relative_to: folder that relative paths are tried in first (the file naming a ``base:``).
        kind: what the files are, for messages (``config``).

    Raises:
        ConfigError: neither a file nor a shipped name (close names are suggested).
    """
    path = Path(name_or_path)
    candidates = [relative_to / path] if relative_to is not None and not path.is_absolute() else []
    candidates.append(path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shipped = folder / f"{path.name.removesuffix('.yml')}.yml"
    if path.suffix in ("", ".yml") and path.parent == Path(".") and shipped.is_file():
        return shipped
    names = shipped_names(folder)
    close = difflib.get_close_matches(path.stem, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"shipped {kind}s: {', '.join(names)}"
    raise ConfigError(f"{kind} {name_or_path}: no such file or shipped {kind}", hint=hint)


def read_yaml(path: Path, kind: str = "config") -> dict[str, Any]:
    """The top-level mapping of a YAML file (empty for an empty file).

    Raises:
        ConfigError: unreadable file, invalid YAML, or not a mapping.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {kind} ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {kind} must be a mapping of sections, found {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml_chain(
    name_or_path: str | Path, folder: Path, kind: str = "config", _seen: tuple[Path, ...] = ()
) -> dict[str, Any]:
    """The raw mapping of a file (see :func:`find_yaml`) with its ``base:`` chain merged in (no type checks yet).

    Raises:
        ConfigError: a file is missing or invalid, ``base`` is not a name, or the chain is circular.
    """
    path = find_yaml(name_or_path, folder, _seen[-1].parent if _seen else None, kind).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular 'base:' chain ({' -> '.join(str(p) for p in (*_seen, path))})")
    data = read_yaml(path, kind)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: 'base' must be a {kind} name or file, got {base!r}")
    return merge(read_yaml_chain(base, folder, kind, (*_seen, path)), data)


# ---------------------------------------------------------------------------------------------
# overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value`` into the key path and the YAML-parsed value.

    Raises:
        ConfigError: no ``=``, an empty key, or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not of the form key.path=value", hint="e.g. optim.lr_g=1e-3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from exc
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set each ``key.path=value`` in a raw mapping (keys are checked later, by :func:`build`)."""
    result = dict(data)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        result = merge(result, nested)
    return result


# ---------------------------------------------------------------------------------------------
# typed conversion


def to_dict(value: Any) -> Any:
    """Plain YAML/JSON-ready form of a dataclass tree (nested dataclasses become dicts, tuples lists)."""
    if dataclasses.is_dataclass(value):
        return {item.name: to_dict(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_dict(item) for item in value]
    if isinstance(value, dict):
        return {key: to_dict(item) for key, item in value.items()}
    return value


def to_yaml(value: Any) -> str:
    """A dataclass tree as YAML text (:func:`build` reads it back to an equal tree)."""
    return yaml.safe_dump(to_dict(value), sort_keys=False, default_flow_style=None)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build(cls: type, data: Any, path: str = "", kind: str = "config key") -> Any:
    """An instance of the dataclass ``cls`` from a raw mapping, every key and value checked.

    Args:
        cls: a dataclass whose fields are annotated with the types below (nested dataclasses,
            unions, ``Literal``, tuples, dicts, bool, int, float, str, Any).
        data: the mapping (as read from YAML).
        path: key path of ``data`` in the whole tree, for messages ("" at the top).
        kind: what a key is called in messages (``config key``, ``preset key``, ``restorer setting``).

    Raises:
        ConfigError: unknown key (with close matches), missing required key or wrong type, named
            by its key path; :class:`InvalidSetting` from a dataclass's own checks, with the key path.
    """
    where = path or "the config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    known = [item.name for item in fields]
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=3)
            suggestions = ", ".join(_join(path, c) for c in close)
            hint = f"did you mean {suggestions}?" if close else f"known: {', '.join(known)}"
            raise ConfigError(f"unknown {kind} {_join(path, str(key))!r}", hint=hint)
    required = (item.name for item in fields if item.default is MISSING and item.default_factory is MISSING)
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where}: needs {', '.join(missing)}")
    values = {key: _convert(value, hints[key], _join(path, key), kind) for key, value in data.items()}
    try:
        return cls(**values)
    except InvalidSetting as exc:
        if not path:
            raise
        raise InvalidSetting(_join(path, exc.key), exc.problem, exc.hint) from exc


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert(value: Any, hint: Any, path: str, kind: str) -> Any:
    """Check ``value`` against the type ``hint`` and convert it (lists to tuples, ints to floats)."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path, kind)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        others = [option for option in options if option is not type(None)]
        if len(others) == 1:
            return _convert(value, others[0], path, kind)  # X | None: X's own error, hint included
        for option in others:
            try:
                return _convert(value, option, path, kind)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: {value!r} is not a {_type_name(hint)}")
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        args = get_args(hint)
        variable = len(args) == 2 and args[1] is Ellipsis
        if isinstance(value, (str, int, float)) and variable:
            value = [value]  # a single value for a variable-length tuple
        if not isinstance(value, (list, tuple)):
            size = "" if variable else f" of {len(args)} values"
            raise ConfigError(f"{path}: expected a list{size}, got {value!r}")
        if variable:
            return tuple(_convert(v, args[0], f"{path}[{i}]", kind) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)} ({value!r})")
        return tuple(_convert(v, a, f"{path}[{i}]", kind) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 4.0e5 written for 400000
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "2e-3" (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported setting type {_type_name(hint)}")  # pragma: no cover


__all__ = [
    "BASE_KEY",
    "InvalidSetting",
    "apply_overrides",
    "build",
    "find_yaml",
    "merge",
    "parse_override",
    "read_yaml",
    "read_yaml_chain",
    "shipped_names",
    "to_dict",
    "to_yaml",
]
