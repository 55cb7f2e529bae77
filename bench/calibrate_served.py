"""One calibration for every backend and elicitation, measured: the embedded SmolLM2 through
llama.cpp's server (one thread, the prefill chat template), calibrated by
``Simulator.calibrate`` (``surveytune calibrate``: the ``region-mean`` prior fitted on the
train split, the model's scale and the prior's weight on 40 valid items) and scored on 40
other valid items (the comparison's items of bench/elicitation_compare.py), before and after,
beside ``uniform`` and ``region-mean``, with paired 95% intervals over questions.

    OMP_NUM_THREADS=1 python bench/calibrate_served.py --items 40 --samples 20
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elicitation_compare import arguments, cpu_name, scores  # noqa: E402
from llama_server import start, stop  # noqa: E402

from surveytune.backends.model_names import DEFAULT_MODEL  # noqa: E402
from surveytune.methods.baselines import region_mean, uniform  # noqa: E402
from surveytune.methods.stats import compare_to  # noqa: E402
from surveytune.simulator import Simulator  # noqa: E402

RUNS = (("logprobs, completions", {}), ("logprobs, chat (prefix continued)",
                                        {"endpoint": "chat"}),
        ("sampling, completions", {"elicit": "sampling"}))


def main() -> None:
    args = arguments(__doc__)
    from surveytune.studies.wvs import study_splits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = study_splits(args.data_dir, unseen_survey=False)
    valid, train = splits["valid"], splits["train"]
    step = len(valid) // args.items
    scored = [valid[i * step] for i in range(args.items)]
    fit_on = [valid[i * step + step // 2] for i in range(args.items)]
    print(f"calibrated on {len(fit_on)} valid items, scored on {len(scored)} others; CPU: "
          f"{cpu_name()}")
    baselines = {"uniform": scores(scored, uniform(scored)),
                 "region-mean": scores(scored, region_mean(train, scored))}
    print("\n| elicitation | calibration (unseen questions) | 1-jsd before | after | after vs "
          "uniform [95%] | after vs region-mean [95%] |\n|---|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        process, url = start(Path(folder) / "server.log", None, threads=1, chat_prefill=True)
        try:
            for label, settings in RUNS:
                extra = {"samples": args.samples} if settings.get("elicit") else {}
                sim = Simulator.load(DEFAULT_MODEL, backend="openai", base_url=url,
                                     concurrency=1, **settings, **extra)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    before = scores(scored, [p.distribution for p in sim.predict(
                        scored, progress=False)])
                    calibration = sim.calibrate(train, fit_on, Path(folder) / label,
                                                progress=False)
                    after = scores(scored, [p.distribution for p in sim.predict(
                        scored, progress=False)])
                found = compare_to(scored, {"after": after, **baselines}, "after",
                                   list(baselines))
                u, r = found["uniform"], found["region-mean"]
                print(f"| {label} | scale {calibration.scales.get('unseen', 1):g}, prior "
                      f"weight {calibration.prior_weights.get('unseen', 1):g} | "
                      f"{np.mean(before):.3f} | {np.mean(after):.3f} | {u.mean:+.3f} "
                      f"[{u.low:+.3f}, {u.high:+.3f}] | {r.mean:+.3f} [{r.low:+.3f}, "
                      f"{r.high:+.3f}] |", flush=True)
        finally:
            stop(process)
    print(f"uniform {np.mean(baselines['uniform']):.3f}, region-mean "
          f"{np.mean(baselines['region-mean']):.3f} on the scored items")


if __name__ == "__main__":
    main()
