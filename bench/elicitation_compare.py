"""One measured comparison of the elicitations on the embedded SmolLM2-135M-Instruct through
llama.cpp's server (llama-cpp-python[server], one thread): letter logprobs on the completions
endpoint, on the chat endpoint with the answer prefix continued (the server started with the
prefill chat template, bench/llama_server.py ``chat_prefill``) and with the instruction
fallback (the server as it comes), verbalized JSON shares and sampled answers, each beside
``uniform`` and ``country-mean`` (fitted on the train split) on the same valid items, with
paired 95% intervals over questions and the cost (requests, tokens, seconds).

    OMP_NUM_THREADS=1 python bench/elicitation_compare.py --items 40 --samples 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_server import start, stop  # noqa: E402

from surveytune.backends.model_names import DEFAULT_MODEL  # noqa: E402
from surveytune.methods.baselines import country_mean, uniform  # noqa: E402
from surveytune.methods.metrics import one_minus_jsd  # noqa: E402
from surveytune.methods.stats import compare_to  # noqa: E402
from surveytune.simulator import Simulator  # noqa: E402

RUNS = [  # label, server with the prefill template, simulator settings
    ("logprobs, completions", True, {}),
    ("logprobs, chat (prefix continued)", True, {"endpoint": "chat"}),
    ("logprobs, chat (instruction; server as it comes)", False, {"endpoint": "chat"}),
    ("verbalized (JSON schema)", True, {"endpoint": "chat", "elicit": "verbalized"}),
    ("sampling, completions", True, {"elicit": "sampling"}),
]


def items_of(data_dir: Path, n: int) -> tuple[list, list]:
    from surveytune.studies.wvs import study_splits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = study_splits(data_dir, unseen_survey=False)
    valid = splits["valid"]
    step = len(valid) // n
    return [valid[i * step] for i in range(n)], splits["train"]


def scores(items, dists) -> list[float]:
    return [float(one_minus_jsd(np.asarray(i.distribution), np.asarray(d)))
            for i, d in zip(items, dists)]


def run(label, url, settings, items, samples) -> dict:
    extra = {"samples": samples} if settings.get("elicit") == "sampling" else {}
    sim = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=url, concurrency=1,
                         on_parse_failure="skip", **settings, **extra)
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = sim.predict(items, progress=False)
    seconds = time.monotonic() - started
    kept = [(i, p) for i, p in zip(items, found) if p.failure is None]
    flat = sum(bool(np.allclose(p.distribution, 1 / len(p.distribution), atol=1e-3))
               for _, p in kept)
    return {"label": label, "kept": kept, "failures": len(items) - len(kept), "flat": flat,
            "seconds": seconds, "usage": dict(sim.backend.usage),
            "how": sorted({p.elicitation or "completions" for p in found}),
            "mc_se": np.mean([p.mc_se for _, p in kept]) if extra else None}


def row(result, train) -> str:
    items = [i for i, _ in result["kept"]]
    model = scores(items, [p.distribution for _, p in result["kept"]])
    table = {"model": model, "uniform": scores(items, uniform(items)),
             "country-mean": scores(items, country_mean(train, items))}
    diffs = compare_to(items, table, "model", ["uniform", "country-mean"])
    u, c = diffs["uniform"], diffs["country-mean"]
    usage = result["usage"]
    se = "" if result["mc_se"] is None else f" (MC s.e. {result['mc_se']:.3f})"
    return (f"| {result['label']}{se} | {len(items)} | {result['failures']} | "
            f"{result['flat']} | "
            f"{np.mean(model):.3f} | {u.mean:+.3f} [{u.low:+.3f}, {u.high:+.3f}] | "
            f"{c.mean:+.3f} [{c.low:+.3f}, {c.high:+.3f}] | {usage['requests']} | "
            f"{usage['prompt_tokens']} / {usage['completion_tokens']} | "
            f"{result['seconds']:.0f} |")


def arguments(doc: str) -> argparse.Namespace:
    """The benches' flags: --items, --samples, --data-dir (default ../shared/data)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    return parser.parse_args()


def cpu_name() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")), "unknown CPU")


def main() -> None:
    args = arguments(__doc__)
    items, train = items_of(args.data_dir, args.items)
    cpu = cpu_name()
    print(f"{len(items)} valid items, {args.samples} samples, llama.cpp server with 1 thread, "
          f"CPU: {cpu}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for prefill in (True, False):
            process, url = start(Path(folder) / f"server-{prefill}.log", None, threads=1,
                                 chat_prefill=prefill)
            try:
                for label, wants, settings in RUNS:
                    if wants == prefill:
                        results.append(run(label, url, settings, items, args.samples))
                        print(f"  {label}: {results[-1]['seconds']:.0f} s, "
                              f"{results[-1]['how']}", flush=True)
            finally:
                stop(process)
    print("\n| elicitation | items scored | unreadable | exactly uniform | mean 1-jsd | "
          "vs uniform [95%] | vs country-mean [95%] | requests | tokens in / out | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for result in sorted(results, key=lambda r: [x[0] for x in RUNS].index(r["label"])):
        print(row(result, train))


if __name__ == "__main__":
    main()
