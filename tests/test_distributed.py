"""Two-process data-parallel training on the CPU (gloo), launched as users launch it:
``accelerate launch --num_processes 2 --cpu -m surveytune train ...``. The loss of every step
must match a single process with the same global batch (dropout off), only rank 0 writes the
run folder, and running the command again resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings

import pytest
from conftest import REPO, synthetic_items

from surveytune.data.files import write_jsonl

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5  # relative, per step: the same numbers up to float32 summation order


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(args: list[str], processes: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "MASTER_ADDR": "127.0.0.1"}
    if processes == 1:
        command = [sys.executable, "-m", "surveytune", "train", *args]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes",
                   str(processes), "--num_machines", "1", "--cpu", "--mixed_precision", "no",
                   "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
                   "-m", "surveytune", "train", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_two_processes_match_one_and_resume(tiny_model_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = synthetic_items(n_questions=4, populations=("Aland", "Borduria", "Carpania",
                                                           "Dorne"))
    write_jsonl(items, tmp_path / "train.jsonl")
    write_jsonl(items[:6], tmp_path / "valid.jsonl")
    common = ["--train", tmp_path / "train.jsonl", "--valid", tmp_path / "valid.jsonl",
              "--model", tiny_model_dir, "--device", "cpu", "--lora-dropout", "0",
              "--lora-r", "4", "--lr", "5e-3", "--batch-size", "4", "--max-steps", "4",
              "--eval-every", "2", "--checkpoint-every", "2", "--allow-unknown-populations",
              "--json"]
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        done = _train([*map(str, common), "--out", str(out)], processes)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[processes] = json.loads((out / "training.json").read_text())
        assert json.loads(done.stdout.strip().splitlines()[-1])["steps_done"] == 4
        assert (out / "adapter" / "adapter_model.safetensors").exists()
        assert not [p.name for p in out.iterdir() if p.name.endswith(".old")]
    one, two = ([loss for _, loss in runs[n]["train_loss"]] for n in (1, 2))
    assert len(one) == len(two) == 4
    for a, b in zip(one, two):
        assert b == pytest.approx(a, rel=TOLERANCE)
    assert [h["valid_loss"] for h in runs[1]["history"]] == pytest.approx(
        [h["valid_loss"] for h in runs[2]["history"]], rel=TOLERANCE)
    # the same command again: every process reads the checkpoint, nothing is retrained
    before = (tmp_path / "p2" / "adapter" / "adapter_model.safetensors").read_bytes()
    again = _train([*map(str, common), "--out", str(tmp_path / "p2")], 2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("resuming from step 4") == 1  # rank 0 only
    assert (tmp_path / "p2" / "adapter" / "adapter_model.safetensors").read_bytes() == before


def test_a_batch_is_cut_into_equal_shards():
    from surveytune.training.distributed import Group

    assert Group(0, 2).shard([5, 6, 7, 8]) == [5, 6] and Group(1, 2).shard([5, 6, 7, 8]) == [7, 8]
    assert Group().shard([1, 2, 3]) == [1, 2, 3]
    with pytest.raises(ValueError, match="multiple of the process count"):
        Group(1, 2).shard([1, 2, 3])
