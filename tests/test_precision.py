"""Precision chosen by the hardware: bf16 autocast only where bfloat16 is native."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import synthetic_items

import surveytune.backends.precision as precision
from surveytune.backends.models import resolve_dtype
from surveytune.backends.precision import (
    choose_precision,
    choose_scoring_dtype,
    cpu_has_native_bf16,
)
from surveytune.simulator import Simulator
from surveytune.training.recipe import TrainConfig


@pytest.fixture
def cpu(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bfloat16, through torch's checks."""
    def set_native(avx512_bf16: bool | None, amx: bool | None = False,
                   flags: frozenset[str] = frozenset()) -> None:
        cpu_has_native_bf16.cache_clear()
        for name, value in (("_is_avx512_bf16_supported", avx512_bf16),
                            ("_is_amx_tile_supported", amx)):
            if value is None:
                monkeypatch.delattr(torch.cpu, name, raising=False)
            else:
                monkeypatch.setattr(torch.cpu, name, lambda v=value: v, raising=False)
        monkeypatch.setattr(precision, "_cpu_flags", lambda: set(flags))
    yield set_native
    cpu_has_native_bf16.cache_clear()


def test_auto_trains_in_float32_on_a_cpu_without_native_bf16(cpu):
    cpu(False, False)
    choice = choose_precision("auto", "cpu")
    assert choice.used == "float32"
    assert "no native bfloat16" in choice.reason
    assert choice.describe().startswith("training precision: float32 (auto: ")


@pytest.mark.parametrize(("avx512", "amx", "named"), [(True, False, "AVX512-BF16"),
                                                      (False, True, "AMX")])
def test_auto_uses_bf16_autocast_where_the_cpu_has_it(cpu, avx512, amx, named):
    cpu(avx512, amx)
    choice = choose_precision("auto", "cpu")
    assert choice.used == "bf16-autocast"
    assert named in choice.reason


def test_cpu_flags_decide_where_torch_has_no_check(cpu):
    cpu(None, None, flags=frozenset({"avx2", "amx_bf16"}))
    assert cpu_has_native_bf16()[0] is True
    cpu(None, None, flags=frozenset({"avx2", "fma"}))
    assert cpu_has_native_bf16()[0] is False


def test_an_explicit_choice_is_kept_and_emulated_bf16_is_said(cpu):
    cpu(False, False)
    assert choose_precision("float32", "cpu").used == "float32"
    slow = choose_precision("bf16-autocast", "cpu")
    assert slow.used == "bf16-autocast" and "emulated" in slow.reason
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        choose_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision: must be one of"):
        TrainConfig(precision="bf16")


def test_scoring_dtype_auto_is_float32_on_the_cpu_even_with_native_bf16(cpu):
    cpu(True, True)
    assert choose_scoring_dtype("auto", "cpu").used == "float32"
    assert resolve_dtype("auto", "cpu") == "float32"
    assert choose_scoring_dtype("bfloat16", "cpu").used == "bfloat16"


def test_training_records_the_precision_it_used(tiny_model_dir, tmp_path, cpu, capsys):
    cpu(False, False)
    items = synthetic_items(n_questions=4, populations=("Aland", "Borduria"))
    train = [i for i in items if i.question_id != "q3"]
    valid = [i for i in items if i.question_id == "q3"]
    sim = Simulator.load(str(tiny_model_dir), chat=False)
    config = TrainConfig(max_steps=2, batch_size=2, eval_every=0, learning_rate=1e-3)
    assert config.precision == "auto"
    sim.fit(train, valid, tmp_path / "run", config, progress=True)
    record = json.loads((tmp_path / "run" / "training.json").read_text())
    assert record["precision"]["requested"] == "auto"
    assert record["precision"]["used"] == "float32"
    assert "no native bfloat16" in record["precision"]["reason"]
    assert "training precision: float32 (auto:" in capsys.readouterr().out
