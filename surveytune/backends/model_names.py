"""What a model name means: the embedded default, a local folder or a Hugging Face name,
refused at once when it cannot be loaded. Imports nothing heavy (``surveytune.DEFAULT_MODEL``)."""

from __future__ import annotations

import os
from pathlib import Path

from surveytune.backends.embedded import EMBEDDED_MODELS, embedded_model_path
from surveytune.backends.errors import ModelError, one_line

DEFAULT_MODEL = "smollm2-135m-instruct"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname or "huggingface.co",
                                       url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def resolve_model(name_or_path: str) -> str:
    """A local folder or hub name that ``from_pretrained`` understands.

    Refuses at once, with a one-line :class:`ModelError`: a local path that is missing, a
    file, or a folder without ``config.json``; a hub name that is neither in the local
    Hugging Face cache nor reachable (no slow retries when the machine is offline).
    """
    if name_or_path in EMBEDDED_MODELS:
        return str(embedded_model_path(name_or_path))
    local = Path(name_or_path).expanduser()
    looks_local = name_or_path.startswith(("/", ".", "~")) or name_or_path.count("/") > 1
    if local.exists() or looks_local:
        if not local.exists():
            raise ModelError(f"cannot load model {name_or_path!r}: no such folder")
        if not local.is_dir():
            raise ModelError(f"cannot load model {name_or_path!r}: a file, not a model folder")
        if not (local / "config.json").is_file():
            raise ModelError(f"cannot load model {name_or_path!r}: a folder without config.json")
        return str(local)
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name_or_path, "config.json")
    except ValueError as exc:  # not a valid repo id
        raise ModelError(f"cannot load model {name_or_path!r}: neither a local folder nor a "
                         f"valid Hugging Face name ({one_line(exc)})") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not isinstance(cached, str) and (offline or not _hub_reachable()):
        raise ModelError(f"cannot load model {name_or_path!r}: not a local folder, not in the "
                         "Hugging Face cache, and the hub cannot be reached"
                         + (" (HF_HUB_OFFLINE is set)" if offline else ""))
    return name_or_path
