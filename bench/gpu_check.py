"""One-GPU check in under 5 minutes: the hf backend on the GPU against the CPU on real valid
items (agreement, mean 1-jsd), scoring throughput on both, and LoRA training steps on the GPU
(throughput, loss). The last line is a JSON summary.

    python bench/gpu_check.py                       # cuda, 100 items, 50 LoRA steps
    python bench/gpu_check.py --device cpu --items 10 --steps 2   # the CPU smoke test

Not yet run on a GPU: no GPU was available when it was written (see the README).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), mps or cpu")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU")
    parser.add_argument("--items", type=int, default=100, help="valid items to score")
    parser.add_argument("--steps", type=int, default=50, help="LoRA steps on --device")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import numpy as np
    import torch
    from scipy.spatial.distance import jensenshannon

    from surveytune.simulator import Simulator
    from surveytune.studies.wvs import study_splits
    from surveytune.training.recipe import TrainConfig

    splits = study_splits(args.data_dir, unseen_survey=False)
    valid = splits["valid"]
    items = [valid[i * (len(valid) // args.items)] for i in range(args.items)]
    summary: dict = {"device": args.device, "items": len(items), "torch": torch.__version__}
    if args.device == "cuda":
        summary["gpu"] = torch.cuda.get_device_name(0)

    def timed_predict(sim: Simulator) -> tuple[list, float]:
        sim.predict(items[: min(8, len(items))], progress=False)  # warm-up (kernels, caches)
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        predictions = sim.predict(items, progress=False)
        if args.device == "cuda":
            torch.cuda.synchronize()
        return predictions, len(items) / (time.perf_counter() - start)

    cpu = Simulator.load(args.model, device="cpu", dtype="float32", batch_size=args.batch_size)
    on_cpu, summary["cpu_items_per_s"] = timed_predict(cpu)
    del cpu
    sim = Simulator.load(args.model, device=args.device, dtype=args.dtype,
                         batch_size=args.batch_size)
    summary["dtype"] = str(next(sim.model.parameters()).dtype).replace("torch.", "")
    on_device, summary["device_items_per_s"] = timed_predict(sim)
    agreement = [1 - jensenshannon(a.distribution, b.distribution, base=2) ** 2
                 for a, b in zip(on_device, on_cpu)]
    summary["agreement_1-jsd_mean"] = float(np.mean(agreement))
    summary["agreement_1-jsd_min"] = float(np.min(agreement))
    print(f"scoring: {summary['device']} {summary['device_items_per_s']:.1f} items/s, cpu "
          f"{summary['cpu_items_per_s']:.1f} items/s; agreement mean 1-jsd "
          f"{summary['agreement_1-jsd_mean']:.5f} (min {summary['agreement_1-jsd_min']:.5f})")

    config = TrainConfig(method="lora", lora_r=16, lora_alpha=32, lora_dropout=0.05,
                         target_modules=("all-linear",), learning_rate=2e-4,
                         batch_size=args.batch_size, max_steps=args.steps, eval_every=0,
                         eval_items=min(32, len(items)), checkpoint_every=args.steps,
                         warmup_ratio=0.0)
    train_items = splits["train"][: args.steps * args.batch_size]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = sim.fit(train_items, items, out, config, progress=False)
        seconds = time.perf_counter() - start
    if args.device == "cuda":
        summary["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    summary["train_steps"] = result.steps_done
    summary["train_s_per_step"] = seconds / max(result.steps_done, 1)
    summary["train_items_per_s"] = result.steps_done * args.batch_size / seconds
    summary["best_valid_loss"] = result.best_valid_loss
    print(f"training: {result.steps_done} LoRA steps in {seconds:.1f} s "
          f"({summary['train_s_per_step']:.2f} s/step incl. 2 validations), "
          f"best valid loss {result.best_valid_loss:.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
