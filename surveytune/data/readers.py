"""Reading survey files: text with its encoding checked, JSON lines and lists with their line
numbers, and the small checks every loader shares. Used by :mod:`surveytune.data.loaders` (the
generic formats) and :mod:`surveytune.data.public_data` (the shared public files)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from surveytune.data.items import (
    SUM_TOLERANCE,
    DataError,
    DataWarning,
    Source,
)

PathLike = str | os.PathLike

# --------------------------------------------------------------------------- shared helpers

def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", file=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, not a file", file=path) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(f"invalid UTF-8 (byte {data[exc.start]:#04x} at column {column})",
                        file=path, line=line) from None


def _json_error(exc: ValueError) -> str:
    """A one-line reason for a JSON text Python refuses (syntax, or a number too long)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    return "invalid JSON: a number with too many digits"


def _iter_jsonl(path: Path) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Yield (source, record) for each non-blank line; refuse invalid JSON and non-objects."""
    # split on "\n" only: str.splitlines() would also split on U+2028 etc. inside strings
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        source = Source(str(path), number)
        try:
            record = json.loads(line)
        except ValueError as exc:  # JSONDecodeError, or an integer of thousands of digits
            raise source.error(_json_error(exc)) from None
        if not isinstance(record, dict):
            raise source.error(f"expected a JSON object, got {type(record).__name__}")
        yield source, record


def _iter_json_list(path: Path) -> Iterator[tuple[Source, dict[str, Any]]]:
    """Yield (source, record) for each object of a top-level JSON list, with its line number."""
    text = _read_text(path)
    decoder = json.JSONDecoder()
    ws = re.compile(r"\s*")

    def fail(message: str, pos: int) -> DataError:
        return DataError(message, file=path, line=text.count("\n", 0, pos) + 1)

    pos = ws.match(text).end()
    if not text.startswith("[", pos):
        raise fail("expected a JSON list of records", pos)
    pos = ws.match(text, pos + 1).end()
    line, counted = 1, 0
    if text.startswith("]", pos):
        return
    while True:
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc.msg}", exc.pos) from None
        except ValueError:  # an integer of thousands of digits
            raise fail("invalid JSON: a number with too many digits", pos) from None
        line += text.count("\n", counted, pos)
        counted = pos
        source = Source(str(path), line)
        if not isinstance(record, dict):
            raise source.error(f"expected a JSON object, got {type(record).__name__}")
        yield source, record
        pos = ws.match(text, end).end()
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise fail("invalid JSON: expected ',' or ']'", pos)
        pos = ws.match(text, pos + 1).end()


def _require(record: dict[str, Any], names: Sequence[str], source: Source) -> None:
    for name in names:
        if record.get(name) is None:
            raise source.error("missing", name)


def _optional_str(record: dict[str, Any], name: str, default: str | None,
                  source: Source) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise source.error(f"expected a string, got {value!r}", name)
    return value


def _sum_or_none(values: Any) -> float | None:
    """The sum of a list of numbers, or None when it is not one (make_item then says why)."""
    try:
        return sum(float(v) for v in values)
    except (TypeError, ValueError, OverflowError):
        return None


def _scale_of(values: Any) -> float:
    """100 when the values look like percentages (their sum is above 2: no fractions, nor
    fractions a little off, sum to that), else 1; a bad sum is then reported in its scale
    ("sums to 75%, more than 5% from 100%")."""
    total = _sum_or_none(values)
    return 100.0 if total is not None and total > 2 else 1.0


PUBLIC_ROUNDING_TOLERANCE = 0.005
"""The public files round their shares; sums this close to 1 are renormalised silently."""


def _bad_sum(values: Any) -> bool:
    """True for a list of non-negative numbers whose sum is too far from 1 to be repaired."""
    total = _sum_or_none(values)
    return (total is not None and all(float(v) >= 0 for v in values)
            and abs(total - 1.0) > SUM_TOLERANCE)


@contextmanager
def _one_repair_warning(path: Path) -> Iterator[None]:
    """Gather the per-item renormalisation warnings of one file into one DataWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    repairs = [w for w in caught if issubclass(w.category, DataWarning)]
    for w in caught:
        if not issubclass(w.category, DataWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if len(repairs) == 1:
        warnings.warn(str(repairs[0].message), DataWarning, stacklevel=3)
    elif repairs:
        warnings.warn(f"{path}: {len(repairs)} distributions renormalised (each within "
                      f"{SUM_TOLERANCE:g} of 1); first: {repairs[0].message}",
                      DataWarning, stacklevel=3)


def _text_hash(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:10]


# --------------------------------------------------------------------------- WVS (unified file)
