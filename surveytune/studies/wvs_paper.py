"""The paper's reported numbers (Cao et al., NAACL 2025; METHOD.md §5), for the reports."""

from __future__ import annotations

from typing import Any

PAPER_TABLE4_COLUMNS = (("test_1", "C1-Q3"), ("test_2", "C2-Q1"), ("test_4", "C2-Q3"),
                        ("test_5", "C3-Q1"), ("test_7", "C3-Q3"))
"""The paper's Table 4 columns: our split name and the paper's country-set × question-range."""

PAPER_TABLE4: tuple[dict[str, Any], ...] = (
    {"model": "Llama3-8B-Instruct", "method": "zero-shot",
     "scores": {"test_1": 0.585, "test_2": 0.650, "test_4": 0.589, "test_5": 0.657,
                "test_7": 0.584}, "avg": 0.613},
    {"model": "Llama3-8B-Instruct", "method": "fine-tuned (best)",
     "scores": {"test_1": 0.777, "test_2": 0.881, "test_4": 0.783, "test_5": 0.890,
                "test_7": 0.784}, "avg": 0.823},
    {"model": "Vicuna-13B", "method": "fine-tuned",
     "scores": {"test_1": 0.781, "test_2": 0.869, "test_4": 0.781, "test_5": 0.882,
                "test_7": 0.781}, "avg": 0.819},
    {"model": "Distil-Qwen-14B", "method": "fine-tuned", "scores": {}, "avg": 0.826},
)
"""The paper's Table 4 (1-jsd, WVS, English prompt; METHOD.md §5). ``avg`` is as reported."""

PAPER_TABLE6_MODEL = "Llama3-8B-Instruct"
PAPER_TABLE6 = {"zero-shot": 0.617, "fine-tuned": 0.767}
"""The paper's Pew unseen-survey 1-jsd (Table 6), Llama3-8B-Instruct."""

PEW_CAVEAT = ("The paper's Pew test file also holds 1,446 WVS rows; ours has them removed "
              "(METHOD.md §4), so the two sets of items differ.")
