"""Start and stop llama.cpp's OpenAI-compatible server (PyPI ``llama-cpp-python[server]``) on
the embedded SmolLM2 GGUF, on a free loopback port. Used by the openai-backend tests and
``bench/openai_throughput.py``."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from surveytune.backends.embedded import EMBEDDED_MODELS
from surveytune.backends.model_names import DEFAULT_MODEL

STARTUP_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gguf_path(name: str = DEFAULT_MODEL) -> Path:
    """The GGUF file of an embedded model, found without importing its package."""
    package, gguf_file, install = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the embedded model needs: {install}")
    return Path(list(spec.submodule_search_locations)[0]) / gguf_file


def prefill_args(folder: Path, name: str = DEFAULT_MODEL) -> list[str]:
    """Server arguments that make its chat endpoint continue a final assistant message: the
    model's own chat template, made to continue it
    (:func:`surveytune.backends.openai_chat.write_prefill_config`), as an HF tokenizer config."""
    from surveytune.backends.models import load_tokenizer
    from surveytune.backends.openai_chat import write_prefill_config

    path = write_prefill_config(load_tokenizer(name), str(folder / "prefill_tokenizer_config.json"))
    return ["--chat_format", "hf-tokenizer-config", "--hf_tokenizer_config_path", path]


def start(log_path: Path, api_key: str | None, *, threads: int = 2, n_ctx: int = 2048,
          alias: str = DEFAULT_MODEL, chat_prefill: bool = False
          ) -> tuple[subprocess.Popen, str]:
    """The server (checking ``api_key``, or no key when None), and its base URL once
    ``/v1/models`` answers; fails with the log's tail when it has not started within
    ``STARTUP_S`` seconds. ``chat_prefill``: its chat endpoint continues a final assistant
    message (:func:`prefill_args`); without it, llama-cpp-python closes that message and
    opens a new one."""
    import requests

    port = free_port()
    extra = prefill_args(log_path.parent) if chat_prefill else []
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
         "--host", "127.0.0.1", "--port", str(port), "--model_alias", alias,
         "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--n_threads_batch",
         str(threads), "--logits_all", "true", *(["--api_key", api_key] if api_key else []), *extra,
         "--verbose", "false"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            answer = requests.get(f"{base_url}/models", timeout=2,
                                  headers={"Authorization": f"Bearer {api_key}"}
                                  if api_key else {})
            if answer.status_code == 200:
                return process, base_url
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(process)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"llama.cpp's server did not start within {STARTUP_S} s:\n{tail}")


def stop(process: subprocess.Popen) -> None:
    """Terminate the server (kill it after 15 s)."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
