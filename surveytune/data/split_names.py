"""Every split name surveytune writes or reads, defined once with what it holds.

``make_item`` accepts exactly these names as an item's ``split``; the split builders
(:mod:`surveytune.data.splits`), the studies (which may word a split their own way, e.g. the
GSS study's ``valid``) and the report read names, meaning and report order here. A new split
is one line below.
"""

from __future__ import annotations

SPLIT_TABLE: dict[str, str] = {
    "train": "training populations and questions",
    "valid": "unseen questions of the training populations (chooses the checkpoint)",
    "test_1": "C1×Q3 unseen questions",
    "test_2": "C2×Q1 unseen countries",
    "test_3": "C2×Q2 unseen countries and questions",
    "test_4": "C2×Q3 unseen countries and questions",
    "test_5": "C3×Q1 unseen countries",
    "test_6": "C3×Q2 unseen countries and questions",
    "test_7": "C3×Q3 unseen countries and questions",
    "goqa": "unseen survey: GlobalOpinionQA Pew rows",
    "test_questions": "unseen questions, seen populations",
    "test_groups": "unseen subgroups, seen questions",
    "valid_zh": "valid in the paper's Chinese prompt (same items as valid's sample)",
    "test_populations": "unseen populations, seen questions",
    "test_both": "unseen populations and questions",
    "test": "a test split of your own files",
}
"""Split name -> what it holds, in the order reports list splits."""
