"""The Python API: a :class:`Simulator` loads a model, predicts answer distributions,
fine-tunes and evaluates. The CLI only parses arguments and calls this.

The scoring itself goes through a backend (:mod:`surveytune.backends.base`): ``hf`` (local
transformers, the default; the only one that trains) or ``openai`` (an OpenAI-compatible
server). The simulator knows only the interface: it renders the prompts, applies priors and
order averaging, writes the same records whatever the backend, and asks the backend for a
trainable handle to fine-tune."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveytune.backends.adapters import (
    AdapterMeta,
    check_calibration_record,
    is_calibration_record,
    load_calibration,
    load_prior,
    save_calibration_record,
)
from surveytune.backends.base import Backend, apply_log_prior, load_backend, options_class
from surveytune.backends.elicitation import elicited, failure_counts
from surveytune.backends.errors import ModelError
from surveytune.backends.model_names import DEFAULT_MODEL
from surveytune.backends.records import prediction_records
from surveytune.backends.scoring import Prediction
from surveytune.data.items import SurveyItem, make_item
from surveytune.data.populations import Population, resolve_population
from surveytune.data.questionnaire import (
    Question,
    aligned_observations,
    items_for,
    load_questionnaire,
    table_rows,
)
from surveytune.data.records import write_predictions
from surveytune.methods.calibration import Calibration, fit_calibration
from surveytune.methods.elicit import check_elicitation, conversation
from surveytune.methods.metrics import metrics_table
from surveytune.methods.observed import ObservedPrior, SimilarPopulations
from surveytune.methods.ordering import order_averaged, reversed_item
from surveytune.methods.priors import Prior, calibration_groups, make_prior
from surveytune.methods.prompts import PROMPT_STYLES, PromptTemplate, build_prompt
from surveytune.methods.scorecard import scorecard
from surveytune.training.recipe import TrainConfig, TrainResult, train

OBSERVED_PRIOR = ", observed prior"
"""Added to an anchored model's method where it predicted on the observed prior."""


class Simulator:
    """A causal LM that answers survey questions for populations.

    >>> sim = Simulator.load()                        # the embedded SmolLM2-135M-Instruct
    >>> sim.predict_question("Is God important in your life?", ["Yes", "No"],
    ...                      ["Egypt", "Sweden"])     # a table of shares per country
    """

    def __init__(self, backend: Backend, *, chat: bool | None = None,
                 template: PromptTemplate | None = None, adapter: str | None = None,
                 prior: Prior | None = None, order_average: bool = False,
                 calibration: Calibration | None = None, prompt: str = "paper",
                 kept_step: int | None = None, calibration_record: str | None = None,
                 elicit: str = "logprobs", samples: int | None = None,
                 on_parse_failure: str = "error", seed: int = 0) -> None:
        self.backend = backend
        self._set_elicitation(elicit, samples, on_parse_failure, seed)
        self.model_name = self.backend.model_name
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat and not has_template:
            raise ModelError(f"{self.model_name} has no chat template; use plain prompts")
        # The paper wraps prompts in the chat template for instruct models: do so by default
        # whenever the tokenizer has one.
        self.chat = has_template if chat is None else chat
        self.template = template
        if prompt not in PROMPT_STYLES:
            raise ModelError(f"--prompt: unknown prompt style {prompt!r}; choose one of "
                             f"{', '.join(PROMPT_STYLES)}")
        # The templates' style (prompts.PROMPT_STYLES) when no template is given.
        self.prompt = prompt
        self.adapter = adapter
        # Prior-anchored prediction: set by fit, or read from the adapter
        # (surveytune.methods.priors).
        self.prior = prior
        # Average each prediction with the one for the reversed option order (2x the work).
        self.order_average = order_average
        # How much of the model to add to the prior, fit on validation data (set by fit, or
        # read from the adapter; surveytune.methods.calibration).
        self.calibration = calibration
        # The training step of the adapter's weights (0: the base weights; set by fit, or
        # read from the adapter's record; None without an adapter).
        self.kept_step = kept_step
        # The calibration record (surveytune calibrate) whose prior and calibration apply to
        # the model as it is; None when there is none.
        self.calibration_record = calibration_record
        # The prior in use while predicting with observed answers (see anchored_on).
        self._observed_prior: ObservedPrior | None = None

    def _set_elicitation(self, elicit: str, samples: int | None, on_parse_failure: str,
                         seed: int) -> None:
        check_elicitation(elicit, samples, on_parse_failure,
                          getattr(self.backend, "endpoint", None))
        self.elicit, self.on_parse_failure, self.seed = elicit, on_parse_failure, seed
        self.samples = (samples or 20) if elicit == "sampling" else None

    @property
    def tokenizer(self) -> Any:
        """The local tokenizer (renders chat prompts; every backend has one)."""
        return self.backend.tokenizer

    @property
    def model(self) -> Any:
        """The transformers model of a backend that trains (``hf``; others raise
        :class:`ModelError`)."""
        return self.backend.trainable().model

    @property
    def letter_ids(self) -> list[int]:
        """The option letters' token ids of a backend that trains."""
        return self.backend.trainable().letter_ids

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, *, adapter: str | os.PathLike | None = None,
             chat: bool | None = None, template: PromptTemplate | None = None,
             batch_size: int = 8, trust_remote_code: bool = False, order_average: bool = False,
             backend: str = "hf", prompt: str | None = None, elicit: str = "logprobs",
             samples: int | None = None, on_parse_failure: str = "error", seed: int = 0,
             **backend_options: Any) -> Simulator:
        """Load a model by name or path, optionally with trained weights from ``adapter``
        (a folder written by :meth:`fit`; refused with :class:`ModelError` when it was
        trained on another base model or does not fit this one). ``order_average`` averages
        every prediction with the one for the reversed option order (twice the work).

        ``backend`` picks the scoring engine (:mod:`surveytune.backends.base`);
        ``backend_options`` are its own (:class:`~surveytune.backends.hf.HFOptions`: ``device``,
        ``dtype``, ``load_in_8bit``; :class:`~surveytune.backends.openai.OpenAIOptions`:
        ``base_url``, ``tokenizer``, ...), an unknown one refused. ``adapter``, ``batch_size``
        and ``trust_remote_code`` reach the backends whose options have them. A backend
        without ``adapter`` (``openai``: the server must serve the adapter's weights under
        ``model``, e.g. vLLM's ``--lora-modules``) gets only its record applied here: chat,
        template, the prior and the calibration.

        ``prompt`` is the prompt style (:data:`surveytune.methods.prompts.PROMPT_STYLES`; default
        the adapter's, else ``paper``). ``elicit``, ``samples``, ``on_parse_failure`` and
        ``seed``: how the distributions are asked for (:meth:`_set_elicitation`).

        ``adapter`` may also be a calibration record (``surveytune calibrate``, no weights):
        its prior and calibration apply to the model as it is, on any backend."""
        check_elicitation(elicit, samples, on_parse_failure,  # before anything loads
                          backend_options.get("endpoint", "completions")
                          if backend == "openai" else None)
        prior, meta, calibration, record = None, None, None, None
        if adapter is not None:
            meta = AdapterMeta.read(Path(adapter))
            if is_calibration_record(meta):  # no weights: its record applies to the model
                check_calibration_record(adapter, meta, model=model, elicit=elicit)
                record = str(adapter)
                order_average = order_average or bool(meta.raw.get("order_average"))
            if chat is None:
                chat = meta.chat
            if template is None and meta.template:
                template = PromptTemplate(**meta.template)
            if prompt is None:
                prompt = meta.raw.get("prompt", "paper")
            prior = load_prior(adapter, meta)
            calibration = load_calibration(adapter, meta)
        adapter = None if adapter is None or record is not None else str(adapter)
        options = options_class(backend).from_values(
            backend_options, adapter=adapter, batch_size=batch_size,
            trust_remote_code=trust_remote_code)
        engine = load_backend(backend, model, options)
        step = None if meta is None else meta.raw.get("step")
        return cls(engine, chat=chat, template=template, adapter=adapter, prior=prior,
                   order_average=order_average, calibration=calibration,
                   prompt=prompt or "paper", kept_step=step if isinstance(step, int) else None,
                   calibration_record=record, elicit=elicit, samples=samples,
                   on_parse_failure=on_parse_failure, seed=seed)

    # -- prediction -------------------------------------------------------------------------
    def prompts(self, items: Sequence[SurveyItem]) -> list[str]:
        return [build_prompt(i, self.tokenizer, chat=self.chat, template=self.template,
                             style=self.prompt) for i in items]

    def predict(self, items: Sequence[SurveyItem], *, progress: bool = True,
                desc: str = "scoring") -> list[Prediction]:
        """One :class:`Prediction` (distribution over the options, letter mass) per item."""
        log_priors = self._log_priors(items)
        predictions = self._score(items, log_priors, progress, desc)
        if not self.order_average:
            return predictions
        back = self._score_reversed(items, log_priors, progress, f"{desc} (reversed)")
        averaged = order_averaged([p.distribution for p in predictions],
                                  [p.distribution for p in back],
                                  mean="geometric" if self.elicit == "logprobs" else "arithmetic")
        models: list = [None] * len(items)
        if all(p.model is not None for p in [*predictions, *back]):
            models = order_averaged([p.model for p in predictions], [p.model for p in back])
        return [replace(p, distribution=dist, model=model, failure=p.failure or q.failure,
                        mc_se=None if p.mc_se is None else float(np.hypot(p.mc_se, q.mc_se) / 2))
                for dist, p, q, model in zip(averaged, predictions, back, models)]

    def predict_reversed(self, items: Sequence[SurveyItem], *, progress: bool = True,
                         desc: str = "scoring reversed") -> list[Prediction]:
        """Predictions for the items with their options reversed, mapped back to the items'
        own option order (the option-order probe of :mod:`surveytune.methods.ordering`). With order
        averaging these are :meth:`predict`'s predictions: averaged over both orders, they
        cannot depend on which order is given."""
        if self.order_average:
            return self.predict(items, progress=progress, desc=desc)
        return self._score_reversed(items, self._log_priors(items), progress, desc)

    @contextmanager
    def anchored_on(self, observed: Sequence[SurveyItem],
                    reference: Sequence[SurveyItem] = ()) -> Iterator[None]:
        """Within the block, an anchored model (one with a prior) takes as its prior the
        ``similar-populations`` prediction from its training rows, ``reference`` and the
        ``observed`` answers (:class:`~surveytune.methods.observed.ObservedPrior`) instead of
        the training rows alone; a model without a prior is unchanged."""
        if self.prior is None or not observed:
            yield
            return
        self._observed_prior = ObservedPrior.fit([*self.prior.train, *reference, *observed])
        try:
            yield
        finally:
            self._observed_prior = None

    def _log_priors(self, items: Sequence[SurveyItem]) -> list | None:
        if self._observed_prior is not None:
            return self._observed_prior.log_priors(items)
        return None if self.prior is None else self.prior.log_priors(items)

    def _groups(self, items: Sequence[SurveyItem]) -> list[str]:
        if self._observed_prior is not None:
            return self._observed_prior.groups(items)
        return calibration_groups(items, self.prior)

    def _score_reversed(self, items: Sequence[SurveyItem], log_priors: list | None,
                        progress: bool, desc: str) -> list[Prediction]:
        """Scores of the reversed twins (priors reversed with their options), mapped back."""
        twins = [reversed_item(i) for i in items]
        twin_priors = None if log_priors is None else [p[::-1] for p in log_priors]
        return [replace(p, distribution=p.distribution[::-1],
                        model=None if p.model is None else p.model[::-1])
                for p in self._score(twins, twin_priors, progress, desc)]

    def _score(self, items: Sequence[SurveyItem], log_priors: list | None, progress: bool,
               desc: str) -> list[Prediction]:
        """The backend's predictions (first-token logprobs, or verbalized or sampled:
        :mod:`surveytune.backends.elicitation`), anchored on the priors; with a calibration,
        the model's own distributions combined with the priors at the calibrated scales."""
        if self.elicit == "logprobs":
            extra = ({"conversations": self.conversations(items)}
                     if getattr(self.backend, "uses_conversations", False) else {})
            found = self.backend.score(
                self.prompts(items), [i.n_options for i in items], chat=self.chat,
                log_priors=None if self.calibration is not None else log_priors,
                progress=progress, desc=desc, **extra)
            if self.calibration is None:
                return found  # the backend added the priors to the letters' logits
        else:
            found = elicited(self.backend, items, how=self.elicit, tokenizer=self.tokenizer,
                             chat=self.chat, template=self.template, style=self.prompt,
                             conversations=(self.conversations(items)
                                            if self.elicit == "sampling" else None),
                             samples=self.samples, seed=self.seed,
                             on_parse_failure=self.on_parse_failure, progress=progress,
                             desc=desc)
            if self.calibration is None and log_priors is None:
                return found
        return self._anchored(items, found, log_priors)

    def _anchored(self, items: Sequence[SurveyItem], found: Sequence[Prediction],
                  log_priors: list | None) -> list[Prediction]:
        """The model's own distributions with the priors added, or combined with them by the
        calibration (then the model's own is kept as ``model``); unreadable ones as they are."""
        if self.calibration is not None:
            dists = self.calibration.apply([p.distribution for p in found], log_priors,
                                           self._groups(items))
        else:
            dists = [apply_log_prior(np.log(np.clip(p.distribution, 1e-12, None)), prior)
                     for p, prior in zip(found, log_priors)]
        own = self.calibration is not None
        return [p if p.failure else replace(p, distribution=np.asarray(d),
                                            model=p.distribution if own else None)
                for d, p in zip(dists, found)]

    def conversations(self, items: Sequence[SurveyItem]) -> list:
        """The items' prompts as chats (user turn, answer prefix, the rendered prompt)."""
        return [conversation(i, p, template=self.template, style=self.prompt)
                for i, p in zip(items, self.prompts(items))]

    def predict_question(self, question: str, options: Sequence[str],
                         populations: Sequence[str | Population], *,
                         population_kind: str | None = None,
                         allow_unknown_populations: bool = False) -> pd.DataFrame:
        """A table of predicted shares: one row per population (its canonical name), one
        column per option, and the letters' next-token mass.

        Each name is resolved by the population vocabulary
        (:func:`~surveytune.data.populations.resolve_population`): "DE" is Germany,
        "POLPARTY: Democrat" a subgroup; it must be of ``population_kind`` when that is given.
        An unknown name raises, unless ``allow_unknown_populations`` (then it is simulated as
        written, with a warning). A :class:`Population` is used as it is.
        """
        resolved = [p if isinstance(p, Population) else resolve_population(
            p, kind=population_kind, allow_unknown=allow_unknown_populations)
            for p in populations]
        uniform = [1 / len(options)] * len(options)
        items = [make_item(survey="user", question_id="q", question=question,
                           options=list(options), distribution=uniform, population=p.name,
                           population_kind=p.kind) for p in resolved]
        predictions = self.predict(items, progress=False)
        table = pd.DataFrame([p.distribution for p in predictions], columns=list(options),
                             index=pd.Index([p.name for p in resolved], name="population"))
        table["letter_mass"] = [p.letter_mass for p in predictions]
        return table

    def predict_frame(self, questions: str | os.PathLike | Sequence[Question],
                      populations: Sequence[str | Population], *,
                      observed: Sequence[SurveyItem] | None = None,
                      reference: Sequence[SurveyItem] | None = None,
                      allow_unknown_populations: bool = False,
                      progress: bool = True) -> pd.DataFrame:
        """Every question of a questionnaire (a file, :mod:`surveytune.data.questionnaire`,
        or its questions) for every population, as one long-form table: ``survey,
        question_id, question, population, population_kind, option, letter, share,
        letter_mass, method, model``. Populations are resolved as in :meth:`predict_question`.

        With ``observed`` answers (cells you already hold), an observed cell is returned as
        observed (method ``observed``) and every other cell also gets the
        ``similar-populations`` prediction (:mod:`surveytune.methods.observed`) from the
        observed and the ``reference`` answers, beside the model's; a fine-tuned (anchored)
        model takes that prediction, with its training rows, as its prior
        (:meth:`anchored_on`)."""
        if isinstance(questions, (str, os.PathLike)):
            questions = load_questionnaire(questions)
        resolved = [p if isinstance(p, Population) else resolve_population(
            p, allow_unknown=allow_unknown_populations) for p in populations]
        items = items_for(questions, [(p.name, p.kind) for p in resolved])
        observed = aligned_observations(observed or (), questions)
        known = {(i.survey, i.question_id, i.population) for i in observed}
        asked = [i for i in items if (i.survey, i.question_id, i.population) not in known]
        with self.anchored_on(observed, reference or ()):
            predictions = self.predict(asked, progress=progress, desc="predicting")
        readable = [p.failure is None for p in predictions]  # unreadable answers: left out
        asked = [i for i, ok in zip(asked, readable) if ok]
        predictions = [p for p, ok in zip(predictions, readable) if ok]
        rows = table_rows(asked, [p.distribution for p in predictions],
                          [p.letter_mass for p in predictions],
                          method=self.label + (OBSERVED_PRIOR if observed and self.prior else ""),
                          model=self.model_name)
        if observed:
            table = SimilarPopulations.fit([*(reference or ()), *observed])
            seen = [i for i in items if (i.survey, i.question_id, i.population) in known]
            rows += table_rows(seen, table.predict(seen), method="observed", model="")
            rows += table_rows(asked, table.predict(asked), method="similar-populations",
                               model="")
        return pd.DataFrame(rows)

    # -- evaluation ---------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return "fine-tuned" if self.adapter else "zero-shot"

    @property
    def label(self) -> str:
        """The method as a person should read it: a fine-tuned model whose kept checkpoint is
        step 0 holds the base weights (training never beat them on validation)."""
        if self.method == "fine-tuned" and self.kept_step == 0:
            return "fine-tuned (kept step 0: the base weights)"
        if self.calibration_record is not None:
            return "zero-shot, calibrated"
        return self.method

    def model_note(self) -> str:
        """What the calibration lets the model add to the prior, for warnings ("" when
        there is no calibration)."""
        if self.calibration is None or not self.calibration.scales:
            return ""
        scales = ", ".join(f"{scale:g} for {group} questions"
                           for group, scale in sorted(self.calibration.scales.items()))
        return f"the calibration gives the model weight {scales} (0: the prior alone)"

    def evaluate(self, splits: dict[str, Sequence[SurveyItem]], *,
                 reference: Sequence[SurveyItem] | None = None,
                 observed: Sequence[SurveyItem] | None = None, level: float = 0.95,
                 predictions_path: str | os.PathLike | None = None,
                 progress: bool = True) -> pd.DataFrame:
        """A tidy table per split: the model's mean of every metric beside the baselines
        (:mod:`surveytune.methods.scorecard`: ``uniform``; fitted on ``reference``, the
        population-mean ones; with ``observed`` answers, ``similar-populations``;
        ``country-mean-loo`` within the split), each baseline's row with the paired difference
        of ``1-jsd`` to the model, its ``level`` interval over questions and the verdict;
        optionally the per-item predictions as JSONL. Items whose cell is observed are not
        scored (their answer is known); an anchored model predicts the others on the observed
        prior (:meth:`anchored_on`)."""
        rows, records = [], []
        known = {(i.survey, i.question_id, i.population) for i in observed or ()}
        splits = {split: [i for i in items if (i.survey, i.question_id, i.population)
                          not in known] for split, items in splits.items()}
        failures: dict[str, dict[str, Any]] = {}
        for split, items in splits.items():
            if not items:
                raise ValueError(f"every item of {split!r} is an observed cell: nothing to "
                                 "score")
            with self.anchored_on(observed or (), reference or ()):
                predictions = self.predict(items, progress=progress, desc=f"scoring {split}")
            failures[split] = failure_counts(predictions)
            kept = [(i, p) for i, p in zip(items, predictions) if p.failure is None]
            if not kept:
                raise ModelError(f"no answer of {split!r} could be read "
                                 f"({failures[split]['reasons']}): nothing to score")
            items, predictions = (list(x) for x in zip(*kept))
            rows += scorecard(items, {self.method: [p.distribution for p in predictions]},
                              split=split, reference=reference, observed=observed, level=level)
            records += prediction_records(split, items, predictions)
        if predictions_path is not None:
            write_predictions(records, predictions_path)
        table = pd.DataFrame(rows)
        table.attrs["failures"] = failures  # per split: unreadable answers left out
        return table

    def _fit_calibration(self, valid_items: Sequence[SurveyItem], progress: bool
                         ) -> tuple[Calibration, list[SurveyItem], list[Prediction]]:
        """Fit the temperature/prior calibration (:mod:`surveytune.methods.calibration`) on
        ``valid_items`` from this simulator's own predictions (before any prior or
        calibration), whatever its backend and elicitation (order averaging included), and
        use it from now on; also the readable items and the predictions it was fit on
        (unreadable answers are left out). Without a prior it is a temperature per group."""
        prior, self.prior, self.calibration = self.prior, None, None
        try:
            found = self.predict(valid_items, progress=progress, desc="calibrating")
        finally:
            self.prior = prior
        pairs = [(i, p) for i, p in zip(valid_items, found) if p.failure is None]
        if not pairs:
            raise ModelError("no validation answer could be read: nothing to calibrate on")
        items, own = [i for i, _ in pairs], [p for _, p in pairs]
        self.calibration = fit_calibration(
            [p.distribution for p in own], self._log_priors(items),
            [i.distribution for i in items], self._groups(items))
        return self.calibration, items, own

    # -- calibration of the model as it is -------------------------------------------------------
    def calibrate(self, train_items: Sequence[SurveyItem], valid_items: Sequence[SurveyItem],
                  out_dir: str | os.PathLike, *, prior: str = "region-mean",
                  progress: bool = True) -> Calibration:
        """Fit the prior (named baseline, :data:`~surveytune.methods.priors.PRIOR_NAMES`) on
        ``train_items`` and the calibration of the model's own distributions against it on
        ``valid_items`` (:mod:`surveytune.methods.calibration`), for any backend; save both as
        a calibration record in ``out_dir`` (load it as ``adapter=``; it also holds the
        calibrated 1-jsd on the readable validation items it was fit on). Afterwards this
        simulator predicts with them. A fine-tuned model has its own calibration: refused."""
        if self.adapter is not None:
            raise ModelError("a fine-tuned adapter carries the calibration fitted when it was "
                             "trained; calibrate the model without --adapter")
        self.prior = fitted = make_prior(prior, train_items)
        calibration, items, own = self._fit_calibration(valid_items, progress)
        calibrated = self._anchored(items, own, self._log_priors(items))  # not scored again
        meta = {"base_model": self.model_name, "backend": self.backend.name, "chat": self.chat,
                "prompt": self.prompt, "order_average": self.order_average,
                "elicit": self.elicit, "samples": self.samples,
                "template": None if self.template is None else self.template.to_dict(),
                "train_config": {"prior": prior}, "calibration": calibration.to_dict(),
                "valid_items": len(valid_items), "train_items": len(train_items),
                "valid_scored": len(items), "valid_1-jsd_calibrated": float(metrics_table(
                    items, [p.distribution for p in calibrated])["1-jsd"].mean())}
        save_calibration_record(Path(out_dir), meta, fitted)
        self.calibration_record = str(out_dir)
        return calibration

    # -- training -----------------------------------------------------------------------------
    def fit(self, train_items: Sequence[SurveyItem], valid_items: Sequence[SurveyItem],
            out_dir: str | os.PathLike, config: TrainConfig | None = None, *,
            progress: bool = True) -> TrainResult:
        """Fine-tune on ``train_items``, choose the checkpoint on ``valid_items``, save it to
        ``out_dir/adapter``; resumes if ``out_dir`` holds an interrupted run of the same
        config and data. Afterwards this simulator predicts with the chosen weights."""
        config = config or TrainConfig()
        handle = self.backend.trainable()
        extra = {"base_model": self.model_name, "chat": self.chat, "prompt": self.prompt,
                 "template": None if self.template is None else self.template.to_dict()}
        handle.model, result = train(handle.model, handle.tokenizer, handle.letter_ids,
                                     train_items, valid_items, self.prompts, config, out_dir,
                                     save_extra=extra, progress=progress, chat=self.chat)
        self.adapter = str(Path(out_dir) / "adapter")
        self.prior, self.calibration = result.prior, result.calibration
        self.kept_step = result.best_step
        return result
