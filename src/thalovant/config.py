"""The per-user config file: where it lives, how it is read, and the 0600 rule.

- Path: ``$XDG_CONFIG_HOME/thalovant/config.yaml``, else ``%APPDATA%/Thalovant/config.yaml`` on
  Windows, else ``~/.config/thalovant/config.yaml``.
- YAML is read with PyYAML when it is installed, else with :func:`parse_yaml_subset` (block
  and flow collections, plain and quoted scalars, comments; anchors, aliases, tags and block
  scalars are refused).
- Files holding secrets must not be readable or writable by group or others
  (:func:`check_private_file`); a Kubernetes projected secret is the one exception.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thalovant.errors import ThalovantIdentityError

__all__ = [
    "MAX_CONFIG_BYTES",
    "YamlSubsetError",
    "check_private_file",
    "config_api_url",
    "default_config_path",
    "load_yaml",
    "parse_yaml_subset",
    "read_private_text",
    "select_identity_mapping",
]

MAX_CONFIG_BYTES = 1024 * 1024


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file path for this user (see the module docstring)."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_CONFIG_HOME", "").strip()
    if xdg:
        return Path(xdg) / "thalovant" / "config.yaml"
    if sys.platform == "win32" and env.get("APPDATA", "").strip():
        return Path(env["APPDATA"]) / "Thalovant" / "config.yaml"
    return Path.home() / ".config" / "thalovant" / "config.yaml"


def _kubernetes_projected_secret(path: Path) -> bool:
    return bool(
        os.environ.get("KUBERNETES_SERVICE_HOST") and path.is_symlink() and (path.parent / "..data").is_symlink()
    )


def check_private_file(path: Path) -> None:
    """Refuse a file that group or others may access (POSIX only)."""
    if os.name != "posix":
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ThalovantIdentityError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(mode):
        raise ThalovantIdentityError(f"{path} is not a regular file.")
    if mode & 0o077 and not _kubernetes_projected_secret(path):
        raise ThalovantIdentityError(
            f"Permissions {stat.S_IMODE(mode):04o} on {path} are too permissive: it holds secrets. "
            f"Run: chmod 600 {path}"
        )


def read_private_text(path: Path) -> str:
    """The UTF-8 text of a private file (after :func:`check_private_file`), at most 1 MiB."""
    check_private_file(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ThalovantIdentityError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ThalovantIdentityError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes; it is not an identity file.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ThalovantIdentityError(f"{path} is not UTF-8 text.") from None


# ---------------------------------------------------------------------------- YAML


class YamlSubsetError(ValueError):
    """The document uses YAML the subset reader does not support, or is malformed."""


def load_yaml(text: str, *, use_pyyaml: bool = True) -> Any:
    """Parse YAML with PyYAML's safe loader when available, else with the subset reader."""
    if use_pyyaml:
        try:
            import yaml
        except ImportError:
            pass
        else:
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1}" if mark is not None else ""
                raise YamlSubsetError(f"invalid YAML{where}") from None
    return parse_yaml_subset(text)


_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?")


def _strip_comment(line: str) -> str:
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def _scalar(text: str, lineno: int) -> Any:
    text = text.strip()
    if not text:
        return None
    first = text[0]
    if first in "&*!":
        raise YamlSubsetError(f"line {lineno}: anchors, aliases and tags are not supported")
    if first in "|>":
        raise YamlSubsetError(f"line {lineno}: block scalars are not supported")
    if first in "[{":
        value, end = _flow(text, 0, lineno)
        if text[end:].strip():
            raise YamlSubsetError(f"line {lineno}: unexpected text after a flow collection")
        return value
    if first == '"':
        value, end = _double_quoted(text, 0, lineno)
        if text[end:].strip():
            raise YamlSubsetError(f"line {lineno}: unexpected text after a quoted string")
        return value
    if first == "'":
        value, end = _single_quoted(text, 0, lineno)
        if text[end:].strip():
            raise YamlSubsetError(f"line {lineno}: unexpected text after a quoted string")
        return value
    return _plain(text)


def _plain(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("null", "~"):
        return None
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _double_quoted(text: str, start: int, lineno: int) -> tuple[str, int]:
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == '"':
            try:
                return json.loads(text[start : index + 1]), index + 1
            except ValueError:
                raise YamlSubsetError(f"line {lineno}: unsupported escape in a double-quoted string") from None
        index += 1
    raise YamlSubsetError(f"line {lineno}: unterminated double-quoted string")


def _single_quoted(text: str, start: int, lineno: int) -> tuple[str, int]:
    index = start + 1
    parts: list[str] = []
    while index < len(text):
        char = text[index]
        if char == "'":
            if text[index + 1 : index + 2] == "'":
                parts.append("'")
                index += 2
                continue
            return "".join(parts), index + 1
        parts.append(char)
        index += 1
    raise YamlSubsetError(f"line {lineno}: unterminated single-quoted string")


def _skip_spaces(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def _flow(text: str, index: int, lineno: int) -> tuple[Any, int]:
    """A flow node starting at ``index``; returns it and the index after it."""
    index = _skip_spaces(text, index)
    if index >= len(text):
        raise YamlSubsetError(f"line {lineno}: unterminated flow collection")
    char = text[index]
    if char == "[":
        items: list[Any] = []
        index = _skip_spaces(text, index + 1)
        if text[index : index + 1] == "]":
            return items, index + 1
        while True:
            item, index = _flow(text, index, lineno)
            items.append(item)
            index = _skip_spaces(text, index)
            if text[index : index + 1] == ",":
                index = _skip_spaces(text, index + 1)
                if text[index : index + 1] == "]":
                    return items, index + 1
                continue
            if text[index : index + 1] == "]":
                return items, index + 1
            raise YamlSubsetError(f"line {lineno}: expected ',' or ']' in a flow sequence")
    if char == "{":
        mapping: dict[Any, Any] = {}
        index = _skip_spaces(text, index + 1)
        if text[index : index + 1] == "}":
            return mapping, index + 1
        while True:
            key, index = _flow(text, index, lineno)
            index = _skip_spaces(text, index)
            value: Any = None
            if text[index : index + 1] == ":":
                value, index = _flow(text, index + 1, lineno)
                index = _skip_spaces(text, index)
            mapping[key] = value
            if text[index : index + 1] == ",":
                index = _skip_spaces(text, index + 1)
                if text[index : index + 1] == "}":
                    return mapping, index + 1
                continue
            if text[index : index + 1] == "}":
                return mapping, index + 1
            raise YamlSubsetError(f"line {lineno}: expected ',' or '}}' in a flow mapping")
    if char == '"':
        return _double_quoted(text, index, lineno)
    if char == "'":
        return _single_quoted(text, index, lineno)
    if char in "&*!|>":
        raise YamlSubsetError(f"line {lineno}: anchors, aliases, tags and block scalars are not supported")
    end = index
    while end < len(text) and text[end] not in ",]}":
        if text[end] == ":" and (end + 1 >= len(text) or text[end + 1] in " ,]}"):
            break
        end += 1
    return _plain(text[index:end].strip()), end


def _split_key(content: str, lineno: int) -> tuple[str, str] | None:
    """``(key, rest)`` when ``content`` is a ``key: value`` or ``key:`` line, else None."""
    if content[0] in "'\"":
        key, end = (_double_quoted if content[0] == '"' else _single_quoted)(content, 0, lineno)
        rest = content[end:].lstrip(" \t")
        if rest.startswith(":") and (len(rest) == 1 or rest[1] in " \t"):
            return key, rest[1:]
        return None
    if content[0] in "[{":
        return None
    match = re.search(r":(\s|$)", content)
    if match is None:
        return None
    return content[: match.start()].rstrip(), content[match.start() + 1 :]


class _Lines:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[int, str, int]] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            if "\t" in raw[: len(raw) - len(raw.lstrip())]:
                raise YamlSubsetError(f"line {lineno}: tabs are not allowed for indentation")
            line = _strip_comment(raw).rstrip()
            if not line.strip():
                continue
            if line.strip() in ("---", "...") and not raw.startswith(" "):
                if line.strip() == "..." or self.items:
                    raise YamlSubsetError(f"line {lineno}: only one YAML document is supported")
                continue
            indent = len(line) - len(line.lstrip(" "))
            self.items.append((indent, line.strip(), lineno))
        self.pos = 0

    def peek(self) -> tuple[int, str, int] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None


def _block(lines: _Lines, indent: int) -> Any:
    current = lines.peek()
    if current is None:
        return None
    _, content, _ = current
    if content == "-" or content.startswith("- "):
        return _sequence(lines, indent)
    return _mapping(lines, indent)


def _value_after(lines: _Lines, rest: str, parent_indent: int, lineno: int, *, seq_same_indent: bool) -> Any:
    rest = rest.strip()
    if rest:
        return _scalar(rest, lineno)
    following = lines.peek()
    if following is None:
        return None
    child_indent, child, _ = following
    if child_indent > parent_indent:
        return _block(lines, child_indent)
    if seq_same_indent and child_indent == parent_indent and (child == "-" or child.startswith("- ")):
        return _sequence(lines, parent_indent)
    return None


def _mapping(lines: _Lines, indent: int) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    while True:
        current = lines.peek()
        if current is None or current[0] < indent:
            return result
        line_indent, content, lineno = current
        if line_indent > indent:
            raise YamlSubsetError(f"line {lineno}: unexpected indentation")
        if content == "-" or content.startswith("- "):
            return result
        split = _split_key(content, lineno)
        if split is None:
            raise YamlSubsetError(f"line {lineno}: expected 'key: value'")
        key_text, rest = split
        key = key_text if content[0] in "'\"" else _scalar(key_text, lineno)
        if key in result:
            raise YamlSubsetError(f"line {lineno}: duplicate key {key!r}")
        lines.pos += 1
        result[key] = _value_after(lines, rest, indent, lineno, seq_same_indent=True)


def _sequence(lines: _Lines, indent: int) -> list[Any]:
    result: list[Any] = []
    while True:
        current = lines.peek()
        if current is None or current[0] != indent:
            if current is not None and current[0] > indent:
                raise YamlSubsetError(f"line {current[2]}: unexpected indentation")
            return result
        _, content, lineno = current
        if not (content == "-" or content.startswith("- ")):
            return result
        rest = content[1:]
        stripped = rest.strip()
        if not stripped:
            lines.pos += 1
            result.append(_value_after(lines, "", indent, lineno, seq_same_indent=False))
            continue
        item_indent = indent + 1 + (len(rest) - len(rest.lstrip(" ")))
        if stripped.startswith("- ") or stripped == "-" or _split_key(stripped, lineno) is not None:
            # a nested block that starts on the dash line: re-read it at its own column
            lines.items[lines.pos] = (item_indent, stripped, lineno)
            result.append(_block(lines, item_indent))
            continue
        lines.pos += 1
        result.append(_scalar(stripped, lineno))


def parse_yaml_subset(text: str) -> Any:
    """Parse the YAML subset described in the module docstring; :class:`YamlSubsetError` on
    anything outside it."""
    lines = _Lines(text)
    first = lines.peek()
    if first is None:
        return None
    indent, content, lineno = first
    if content[0] in "[{\"'" and _split_key(content, lineno) is None:
        lines.pos += 1
        value = _scalar(content, lineno)
        if lines.peek() is not None:
            raise YamlSubsetError(f"line {lines.peek()[2]}: unexpected content after the document")  # type: ignore[index]
        return value
    if not (content == "-" or content.startswith("- ")) and _split_key(content, lineno) is None:
        lines.pos += 1
        if lines.peek() is not None:
            raise YamlSubsetError(f"line {lineno}: expected 'key: value'")
        return _scalar(content, lineno)
    value = _block(lines, indent)
    leftover = lines.peek()
    if leftover is not None:
        raise YamlSubsetError(f"line {leftover[2]}: unexpected indentation")
    return value


# ---------------------------------------------------------------------------- selection


def load_config_document(path: Path, *, require_private: bool = True) -> Any:
    """Read and parse a config file; ThalovantIdentityError on an unsafe or malformed file."""
    if require_private:
        text = read_private_text(path)
    else:
        try:
            raw = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
        except OSError as exc:
            raise ThalovantIdentityError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ThalovantIdentityError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes.")
        text = raw.decode("utf-8", errors="replace")
    try:
        return load_yaml(text)
    except YamlSubsetError as exc:
        raise ThalovantIdentityError(f"Cannot parse {path}: {exc}. Fix the YAML.") from None


def select_identity_mapping(document: Any, profile: str | None = None, *, where: str = "config") -> Mapping[str, Any]:
    """The identity mapping of a config document (dataplane.md 1.5): with ``profiles``, the
    named (else selected, else ``default``) profile's ``identity`` or the profile itself;
    without, the top-level ``identity`` or the whole document."""
    if not isinstance(document, Mapping):
        raise ThalovantIdentityError(f"The {where} is not a YAML mapping.")
    profiles = document.get("profiles")
    if isinstance(profiles, Mapping):
        name = profile
        if name is None:
            for key in ("profile", "default_profile", "defaultProfile"):
                if isinstance(document.get(key), str) and document[key].strip():
                    name = document[key].strip()
                    break
        name = name or "default"
        chosen = profiles.get(name)
        if not isinstance(chosen, Mapping):
            known = ", ".join(str(k) for k in profiles) or "none"
            raise ThalovantIdentityError(f"The {where} has no profile {name!r} (profiles: {known}).")
        inner = chosen.get("identity")
        return inner if isinstance(inner, Mapping) else chosen
    if profile is not None:
        raise ThalovantIdentityError(f"The {where} has no 'profiles' mapping, so profile {profile!r} cannot be chosen.")
    inner = document.get("identity")
    return inner if isinstance(inner, Mapping) else document


def config_api_url(path: Path | None = None) -> str | None:
    """The top-level ``api_url`` of the config file, or None when there is no file or key.
    (Reading a URL leaks nothing, so the 0600 rule is not applied here.)"""
    target = path or default_config_path()
    if not target.is_file():
        return None
    document = load_config_document(target, require_private=False)
    if isinstance(document, Mapping):
        value = document.get("api_url")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
