"""Smoke test of ``bench/gpu_check.py`` on the CPU (the tiny model, 10 items, 2 LoRA steps):
the script runs end to end and reports what it says it reports. On the CPU both sides of the
agreement are the same float32 model, so the agreement must be exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, data_dir


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_gpu_check_runs_on_the_cpu(tiny_model_dir):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--device", "cpu", "--items",
         "10", "--steps", "2", "--model", str(tiny_model_dir), "--data-dir", str(data_dir())],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["device"] == "cpu" and summary["items"] == 10
    assert summary["dtype"] == "float32"
    assert summary["agreement_1-jsd_mean"] > 1 - 1e-9
    assert summary["train_steps"] == 2 and summary["train_s_per_step"] > 0
    assert summary["cpu_items_per_s"] > 0 and summary["device_items_per_s"] > 0
