"""Reading the project's YAML files with clear errors.

`load_yaml` refuses a key given twice in one mapping; a `Layout` checks the parsed
file against what it may hold. Every error names the file, where in it (a dotted
path such as `notebooks.classic.profiles`), what is wrong and what is valid.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class SchemaError(ValueError):
    """A YAML file of the project that does not have the layout it must have."""


class _UniqueKeys(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError("while reading a mapping", node.start_mark,
                                                            f"found the key {key!r} twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


def shown(path: Path) -> str:
    """The path as errors show it: relative to the checkout when inside it."""
    from .paths import project_root

    path = Path(path)
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def load_yaml(path: Path):
    """The parsed file; a syntax error or a duplicate key is a SchemaError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_UniqueKeys)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{shown(path)}: {exc}") from None


def _kind(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


class Layout:
    """Checks of one file's parsed content; each raises a SchemaError naming the file and where."""

    def __init__(self, path: Path):
        self.file = shown(path)

    def fail(self, where: str, message: str):
        raise SchemaError(f"{self.file}: {where or 'top level'}: {message}")

    def mapping(self, value, where: str, valid=None, required=(), what: str = "") -> dict:
        """`value` as a mapping whose keys are among `valid` (any, if None) and include `required`.
        `what` says which keys are valid when that depends on another value (e.g. "kind ladder")."""
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping{self._keys(valid)}; got {_kind(value)}")
        if valid is not None:
            for key in value:
                if key not in valid:
                    self.fail(where, f"unknown key {key!r}{f' ({what})' if what else ''}; "
                                     f"valid: {', '.join(map(str, valid))}")
        for key in required:
            if key not in value:
                self.fail(where, f"missing {key!r}{f' ({what})' if what else ''}; "
                                 f"required: {', '.join(required)}{self._keys(valid, 'valid')}")
        return value

    @staticmethod
    def _keys(valid, word: str = "keys") -> str:
        return f"; {word}: {', '.join(map(str, valid))}" if valid else ""

    def choice(self, value, where: str, valid, what: str = "value"):
        """One of `valid`; `what` names what it is in the error."""
        if value not in valid:
            self.fail(where, f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")
        return value

    def names(self, value, where: str, valid=None) -> list:
        """A list of names, each among `valid` when given."""
        if not isinstance(value, list):
            self.fail(where, f"expected a list; got {_kind(value)}")
        for i, name in enumerate(value):
            if valid is not None:
                self.choice(name, f"{where}[{i}]", valid)
            elif not isinstance(name, str):
                self.fail(f"{where}[{i}]", f"expected a name; got {_kind(name)}")
        return value

    def number(self, value, where: str, low: float | None = None, high: float | None = None) -> float:
        """A number (not a boolean) within [low, high] where those are given."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"expected a number; got {_kind(value)}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(where, f"{value!r} is out of range [{low}, {high}]")
        return float(value)

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected text; got {_kind(value)}")
        return value
