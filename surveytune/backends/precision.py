"""Which arithmetic a device does natively, and the training precision chosen from it.

bfloat16 autocast is only a speed-up where the hardware computes in bfloat16: a CUDA GPU
that supports it, or a CPU with AVX512-BF16 or AMX. A CPU with only AVX2 (most AMD and laptop
CPUs) emulates it, and a LoRA step there runs about 20x slower than in float32 (150 s vs
7.5 s per step of the default budget on a 2-core AMD EPYC), so ``auto`` trains in float32
there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

PRECISIONS = ("auto", "float32", "bf16-autocast")
"""``--precision``: ``auto`` picks ``bf16-autocast`` where bfloat16 is native, else float32."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run asked for, the one it uses, and why (recorded in training.json and
    results.json)."""

    requested: str
    used: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        how = "auto" if self.requested == "auto" else "asked for"
        return f"training precision: {self.used} ({how}: {self.reason})"


@cache
def _cpuinfo(field: str) -> str:
    """The first ``field`` line of Linux's /proc/cpuinfo ("" elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith(field):
            return line.partition(":")[2].strip()
    return ""


def _cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    return set(_cpuinfo("flags").split())


def _torch_says(name: str) -> bool | None:
    """torch's own CPU check ``torch.cpu.<name>()``, or None where this torch lacks it."""
    check = getattr(torch.cpu, name, None)
    if check is None:
        return None
    try:
        return bool(check())
    except (RuntimeError, AttributeError):
        return None


@cache
def cpu_capability() -> str:
    """What torch's kernels dispatch to on this CPU (``AVX2``, ``AVX512``, ``DEFAULT``...)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (RuntimeError, AttributeError):
        return "unknown"


@cache
def cpu_has_native_bf16() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), and what says so:
    torch's checks where it has them, else the kernel's CPU flags."""
    found = []
    for name, check, flag in (("AVX512-BF16", "_is_avx512_bf16_supported", "avx512_bf16"),
                              ("AMX", "_is_amx_tile_supported", "amx_bf16")):
        says = _torch_says(check)
        if says if says is not None else flag in _cpu_flags():
            found.append(name)
    if found:
        return True, f"this CPU has {' and '.join(found)}"
    return False, (f"this CPU has no native bfloat16: no AVX512-BF16 or AMX (torch kernels: "
                   f"{cpu_capability()})")


def native_bf16(device: str) -> tuple[bool, str]:
    """Whether ``device`` (``cpu``, ``cuda``, ``mps``) computes bfloat16 natively, and why."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return True, f"CUDA GPU {torch.cuda.get_device_name()} supports bfloat16"
        return False, "this CUDA GPU does not support bfloat16"
    if kind == "cpu":
        return cpu_has_native_bf16()
    return False, f"bfloat16 autocast is not used on {kind}"


def choose_precision(requested: str, device: str) -> PrecisionChoice:
    """The training precision for ``requested`` (one of :data:`PRECISIONS`) on ``device``."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    native, why = native_bf16(device)
    if requested == "auto":
        return PrecisionChoice(requested, "bf16-autocast" if native else "float32", why)
    if requested == "bf16-autocast" and not native:
        return PrecisionChoice(requested, requested,
                               f"{why}: bfloat16 is emulated and much slower here")
    return PrecisionChoice(requested, requested, why)


def choose_scoring_dtype(requested: str, device: str) -> PrecisionChoice:
    """The weights' dtype for scoring: ``auto`` is bfloat16 only on a CUDA GPU that supports
    it; on a CPU (even with native bfloat16) and on MPS it is float32, which scores exactly
    (bfloat16 moves single probabilities by up to ~0.06, README "Speed")."""
    if requested != "auto":
        return PrecisionChoice(requested, requested, "asked for")
    kind = str(device).split(":")[0]
    if kind == "cuda":
        native, why = native_bf16(device)
        return PrecisionChoice(requested, "bfloat16" if native else "float32", why)
    return PrecisionChoice(requested, "float32",
                           f"float32 scores exactly on {kind}; bfloat16 is used on GPUs only")


def machine_summary() -> str:
    """The machine as benchmarks and records state it: CPU model, torch's kernel level,
    threads, native bfloat16, and the GPU if there is one."""
    model = _cpuinfo("model name") or "unknown CPU"
    native, _ = cpu_has_native_bf16()
    text = (f"{model}, torch {torch.__version__} kernels {cpu_capability()}, "
            f"{torch.get_num_threads()} threads, native bfloat16: {'yes' if native else 'no'}")
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name()}"
    return text
