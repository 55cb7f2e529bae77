"""Scoring throughput of the ``openai`` backend against llama.cpp's server (the embedded
SmolLM2 Q4_1 GGUF) and of the ``hf`` backend (its dequantised float32 weights, CPU) on the same
valid items, in one run: items/s of each, their ratio, and their agreement (mean 1-jsd).

    python bench/openai_throughput.py [--items 100] [--threads 2] [--concurrency 2]

Needs ``llama-cpp-python[server]`` (``make install-server``). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    import torch
    from llama_server import start, stop
    from scipy.spatial.distance import jensenshannon

    from surveytune.simulator import Simulator
    from surveytune.studies.wvs import study_splits

    valid = study_splits(args.data_dir, unseen_survey=False)["valid"]
    items = [valid[i * (len(valid) // args.items)] for i in range(args.items)]
    summary: dict = {"items": len(items), "torch_threads": torch.get_num_threads(),
                     "llama_threads": args.threads, "concurrency": args.concurrency}

    hf = Simulator.load(device="cpu", dtype="float32")
    hf.predict(items[:8], progress=False)
    start_s = time.perf_counter()
    local = hf.predict(items, progress=False)
    summary["hf_items_per_s"] = len(items) / (time.perf_counter() - start_s)
    del hf

    key = "bench-key"
    os.environ["SURVEYTUNE_API_KEY"] = key
    with tempfile.TemporaryDirectory() as tmp:
        process, base_url = start(Path(tmp) / "server.log", key, threads=args.threads)
        try:
            served = Simulator.load(backend="openai", base_url=base_url,
                                    concurrency=args.concurrency)
            served.predict(items[:8], progress=False)
            start_s = time.perf_counter()
            remote = served.predict(items, progress=False)
            summary["openai_items_per_s"] = len(items) / (time.perf_counter() - start_s)
        finally:
            stop(process)
    summary["ratio_openai_over_hf"] = summary["openai_items_per_s"] / summary["hf_items_per_s"]
    agreement = [1 - jensenshannon(a.distribution, b.distribution, base=2) ** 2
                 for a, b in zip(remote, local)]
    summary["agreement_1-jsd_mean"] = float(np.mean(agreement))
    print(f"hf (float32, CPU): {summary['hf_items_per_s']:.2f} items/s; openai backend on "
          f"llama.cpp (Q4_1, {args.threads} threads, {args.concurrency} in flight): "
          f"{summary['openai_items_per_s']:.2f} items/s; ratio "
          f"{summary['ratio_openai_over_hf']:.2f}; agreement mean 1-jsd "
          f"{summary['agreement_1-jsd_mean']:.4f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
