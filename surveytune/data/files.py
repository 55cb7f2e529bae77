"""Writing files so that a reader never sees half of one: text in general, and survey items
in the canonical JSONL format that :func:`surveytune.data.loaders.load_items` reads back."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from surveytune.data.items import SurveyItem

__all__ = ["atomic_write_text", "write_jsonl"]


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(items: Iterable[SurveyItem], path: str | os.PathLike) -> None:
    """Write items in the canonical JSONL format, atomically. An item whose option labels
    repeat (a known defect of public GOQA rows) is marked ``"repeated_options": true``, so that
    the file loads back."""
    atomic_write_text(path, "".join(json.dumps(_record(i), ensure_ascii=False) + "\n"
                                    for i in items))


def _record(item: SurveyItem) -> dict:
    record = item.to_dict()
    labels = [label.strip() for label in item.options]
    if len(set(labels)) < len(labels):
        record["repeated_options"] = True
    return record
