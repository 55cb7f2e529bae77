"""Peak memory (resident set) of LoRA training with the default budget's configuration.

Runs ``surveytune.training.recipe.train`` for a few steps with the default budget's LoRA config
(``surveytune.studies.wvs.BUDGETS["default"].train``: r=16, all linear layers, dropout 0.05, KL,
batch 8, bf16 autocast) on the longest items of the real train split (steps x 8 of them: the
batches that set an epoch's peak; ``--first`` takes the epoch's first batches instead),
validating on a seeded sample of valid at step 0 and at the end. It prints the process's peak
resident set (VmHWM) after each phase: imports, model load, data, then training (steps,
validations, checkpoints). A thread samples the resident set every 20 ms to say in which part
of training the peak happened. The last line is ``peak_rss_mb: N``.

    python bench/training_memory.py [--steps 3] [--eval-items 16] [--data-dir ../shared/data]
                                    [--gradient-checkpointing]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class Sampler(threading.Thread):
    """Samples the resident set while training runs, tagged with what the loop is doing."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.phase = "setup"
        self.peaks: dict[str, float] = {}
        self.stopped = False

    def run(self) -> None:
        while not self.stopped:
            rss = _status_mb("VmRSS")
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), rss)
            time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="LoRA steps")
    parser.add_argument("--eval-items", type=int, default=16,
                        help="valid items per validation")
    parser.add_argument("--first", action="store_true",
                        help="train on the whole split (its first batches), not the longest items")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute activations in backward (TrainConfig option)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    print(f"after python start:     peak {_status_mb('VmHWM'):7.0f} MB")
    import torch

    import surveytune.training.recipe as training
    from surveytune.simulator import Simulator
    from surveytune.studies.budgets import RECIPES
    from surveytune.studies.wvs import BUDGETS, study_splits

    print(f"after imports:          peak {_status_mb('VmHWM'):7.0f} MB")
    sim = Simulator.load(args.model)
    print(f"after model load:       peak {_status_mb('VmHWM'):7.0f} MB")
    splits = study_splits(args.data_dir, unseen_survey=False)
    print(f"after data load:        peak {_status_mb('VmHWM'):7.0f} MB "
          f"({len(splits['train'])} train items)")

    # The paper method's fields: a few of the longest items hold too few countries to hold
    # some out, and the prior and calibration do not change what a step holds in memory.
    config = replace(BUDGETS["default"].train, max_steps=args.steps, eval_every=args.steps,
                     eval_items=args.eval_items, checkpoint_every=args.steps,
                     gradient_checkpointing=args.gradient_checkpointing, **RECIPES["paper"])
    train_items = splits["train"]
    if not args.first:
        lengths = [len(ids) for ids in sim.tokenizer(sim.prompts(train_items))["input_ids"]]
        longest = sorted(range(len(train_items)), key=lambda i: -lengths[i])
        train_items = [train_items[i] for i in longest[:args.steps * config.batch_size]]
        print(f"training on the {len(train_items)} longest train items "
              f"({lengths[longest[len(train_items) - 1]]}-{lengths[longest[0]]} tokens)")
    sampler = Sampler()
    # Tag the sampler's phases by wrapping the loop's parts (the bench's only intrusion).
    originals = {name: getattr(training, name) for name in ("batch_loss", "validate")}

    def tagged(name: str):
        def call(*a, **k):
            sampler.phase = "training steps" if name == "batch_loss" else "validation"
            try:
                return originals[name](*a, **k)
            finally:
                sampler.phase = "between (backward, optimizer, checkpoint)"
        return call

    for name in originals:
        setattr(training, name, tagged(name))
    sampler.start()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        sim.fit(train_items, splits["valid"], out, config, progress=False)
    seconds = time.perf_counter() - start
    sampler.stopped = True
    sampler.join()
    for name, function in originals.items():
        setattr(training, name, function)
    print(f"after {args.steps} LoRA steps + 2 validations of {args.eval_items} items: "
          f"peak {_status_mb('VmHWM'):7.0f} MB ({seconds:.0f} s, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads)")
    for phase, peak in sampler.peaks.items():
        print(f"  sampled peak during {phase}: {peak:7.0f} MB")
    print(f"peak_rss_mb: {_status_mb('VmHWM'):.0f}")


if __name__ == "__main__":
    main()
