"""Judging SpatialRGPT-Bench answers: the deterministic judge, the scoring rules, and (re-)judging saved predictions.

`DeterministicJudge` reads the ground truth ONCE from the gt answer and the prediction with the extractors of
`theworld.evaluation.quantities`: predicates compare yes/no, choices compare the region named, distances and sizes
succeed when |pred − gt| ≤ 0.25·gt in meters (inclusive), directions when within 1 hour on the clock. The LLM judges
(`theworld.evaluation.judge_llm`) ask a model for the paper's JSON and score its numbers with the same rules.

Unlike the reference scorers (which count a failed judge call as a wrong answer and read "Region [0]" as 0 m), an item
the judge cannot decide — unparseable gt, unknown category, malformed judge output, HTTP error — is `unjudged`
(`correct=None`) with its reason, counted and reported, never scored 0. A prediction that holds no answer (a refusal,
no number, no region) is judged wrong with reason `NO_ANSWER`, so a model cannot gain by refusing.
[Contract] a judge returns one `Judgement` per (question, prediction), in order; `judge_records` re-judges saved
predictions resumably (an id is judged again only when its prediction changed or its judgement failed transiently).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from theworld.evaluation.quantities import (
    clock_distance,
    extract_clock,
    extract_region_choice,
    extract_yes_no,
    parse_length,
)
from theworld.evaluation.results import ResultsFile, read_results
from theworld.evaluation.runner import EvalItem
from theworld.evaluation.spatial_bench import NO_ANSWER, UNKNOWN_CATEGORY, SpatialQuestion

logger = logging.getLogger(__name__)

SUCCESS_RATIO = 0.25  # |pred - gt| <= 0.25 * gt
DEGREES_PER_HOUR = 30.0
_TOLERANCE = 1e-9  # relative: unit conversions must not push an exact 25% off by a rounding error


@dataclass(frozen=True)
class Judgement:
    """The verdict on one prediction. `correct` None = unjudged (see `reason`); `error` is the relative error
    (distances, sizes) or degrees (direction); `retryable` marks a transient failure (HTTP, timeout)."""

    correct: bool | None
    error: float | None = None
    pred_value: Any = None
    gt_value: Any = None
    reason: str = ""
    judge_output: str | None = None
    retryable: bool = False

    def fields(self) -> dict[str, Any]:
        """The record fields of this judgement (see `theworld.evaluation.spatial_bench` for the record layout)."""
        return {
            "correct": self.correct,
            "error": self.error,
            "pred_value": self.pred_value,
            "gt_value": self.gt_value,
            "reason": self.reason,
            "judge_output": self.judge_output,
            "judge_retryable": self.retryable,
        }


def unjudged(reason: str, **values: Any) -> Judgement:
    return Judgement(correct=None, reason=reason, **values)


class Judge(Protocol):
    label: str

    def judge(self, question: SpatialQuestion, prediction: str) -> Judgement: ...

    def judge_many(self, questions: Sequence[SpatialQuestion], predictions: Sequence[str]) -> list[Judgement]: ...


# --- scoring rules ---------------------------------------------------------------------------------------------------
def score_length(gt_m: float | None, pred_m: float | None, **extra: Any) -> Judgement:
    """Success iff |pred − gt| ≤ 0.25·gt (inclusive); error |gt − pred| / gt. gt missing or ≤ 0 → unjudged."""
    if gt_m is None or isinstance(gt_m, bool) or not isinstance(gt_m, (int, float)):
        return unjudged("gt: no length", pred_value=pred_m, **extra)
    if gt_m <= 0:
        return unjudged("gt: zero length", pred_value=pred_m, gt_value=gt_m, **extra)
    if pred_m is None:
        return Judgement(False, None, None, gt_m, NO_ANSWER, **extra)
    difference = abs(float(pred_m) - float(gt_m))
    correct = difference <= SUCCESS_RATIO * gt_m * (1 + _TOLERANCE)
    return Judgement(correct, difference / gt_m, float(pred_m), float(gt_m), **extra)


def score_direction(gt_hour: int | None, pred_hour: int | None, **extra: Any) -> Judgement:
    """Success iff within 1 hour on the 12-hour circle; error in degrees (30° per hour)."""
    if gt_hour is None:
        return unjudged("gt: no clock direction", pred_value=pred_hour, **extra)
    if pred_hour is None:
        return Judgement(False, None, None, gt_hour, NO_ANSWER, **extra)
    hours = clock_distance(gt_hour, pred_hour)
    return Judgement(hours <= 1, hours * DEGREES_PER_HOUR, pred_hour, gt_hour, **extra)


# --- the deterministic judge -----------------------------------------------------------------------------------------
_PREDICATE_WORDS: dict[str, tuple[str, ...]] = {
    "below": ("below", "under", "beneath", "lower"),
    "above": ("above", "over", "higher", "on top"),
    "left": ("left",),
    "right": ("right",),
    "big": ("bigger", "larger"),
    "small": ("smaller",),
    "tall": ("taller",),
    "short": ("shorter",),
    "wide": ("wider",),
    "thin": ("thinner", "narrower"),
    "behind": ("behind", "further", "farther"),
    "front": ("in front", "closer", "nearer"),
}
_OPPOSITE = {"below": "above", "left": "right", "big": "small", "tall": "short", "wide": "thin", "behind": "front"}
_OPPOSITE.update({value: key for key, value in list(_OPPOSITE.items())})
_TAG = re.compile(r"region\s*\[\s*(\d+)\s*\]")


def statement_polarity(prediction: str, question: SpatialQuestion) -> bool | None:
    """A predicate answered by a statement ("Region [0] is behind Region [1]." to "Is Region [0] behind Region
    [1]?"): True/False when it has the question's subject first and the category's relation word (negated or not),
    and not the opposite relation's words; else None."""
    relation = question.category.removesuffix("_predicate")
    words, opposite = _PREDICATE_WORDS.get(relation), _PREDICATE_WORDS.get(_OPPOSITE.get(relation, ""), ())
    text = " ".join(prediction.lower().split())
    asked, said = _TAG.findall(question.question.lower()), _TAG.findall(text)
    if not words or not asked or not said or said[0] != asked[0]:
        return None
    if not any(re.search(rf"\b{w}\b", text) for w in words) or any(re.search(rf"\b{w}\b", text) for w in opposite):
        return None
    return re.search(r"\b(?:not|isn't|aren't|doesn't|never)\b", text) is None


class DeterministicJudge:
    """Rule-based judge (no model): see the module docstring."""

    label = "deterministic"

    def judge(self, question: SpatialQuestion, prediction: str) -> Judgement:
        kind = question.kind
        if kind == "length":
            gt = parse_length(question.answer)
            if gt is None:
                return unjudged("gt: no length")
            pred = parse_length(prediction)
            return score_length(gt.meters, None if pred is None else pred.meters)
        if kind == "direction":
            return score_direction(extract_clock(question.answer), extract_clock(prediction))
        if kind == "predicate":
            gt_answer = extract_yes_no(question.answer)
            if gt_answer is None:
                gt_answer = statement_polarity(question.answer, question)
            if gt_answer is None:
                return unjudged("gt: no yes/no")
            pred_answer = extract_yes_no(prediction)
            if pred_answer is None:
                pred_answer = statement_polarity(prediction, question)
            if pred_answer is None:
                return Judgement(False, None, None, _yes_no(gt_answer), NO_ANSWER)
            return Judgement(pred_answer == gt_answer, None, _yes_no(pred_answer), _yes_no(gt_answer))
        if kind == "choice":
            gt_region = extract_region_choice(question.answer, question.num_regions)
            if gt_region is None:
                return unjudged("gt: no region")
            pred_region = extract_region_choice(prediction, question.num_regions, question.aliases)
            if pred_region is None:
                return Judgement(False, None, None, gt_region, NO_ANSWER)
            return Judgement(pred_region == gt_region, None, pred_region, gt_region)
        return unjudged(UNKNOWN_CATEGORY)

    def judge_many(self, questions: Sequence[SpatialQuestion], predictions: Sequence[str]) -> list[Judgement]:
        return [self.judge(q, p) for q, p in zip(questions, predictions, strict=True)]


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def make_scorer(judge: Judge) -> Callable[[EvalItem, str], dict[str, Any]]:
    """`run_items`' `score`: judge one generated answer, returning the record fields (plus "judge")."""

    def score(item: EvalItem, prediction: str) -> dict[str, Any]:
        return {**judge.judge(SpatialQuestion.from_item(item), prediction).fields(), "judge": judge.label}

    return score


# --- choosing a judge ------------------------------------------------------------------------------------------------
def judge_slug(label: str) -> str:
    """A file-name-safe form of a judge label ("openai:gpt-4o" → "openai_gpt-4o")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "judge"


def add_judge_arguments(parser: argparse.ArgumentParser, default: str = "deterministic") -> None:
    add = parser.add_argument
    add("--judge", default=default, help="deterministic | hf:<model dir or Hub id> | openai:<model name>")
    add("--judge-base-url", default=None, help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL, else OpenAI)")
    add("--judge-timeout", type=float, default=60.0, help="seconds per judge request")
    add("--judge-retries", type=int, default=2, help="retries of a failed judge request (HTTP 429/5xx, timeout)")
    add("--judge-workers", type=int, default=4, help="judge requests in flight at once (openai)")
    add("--judge-batch-size", type=int, default=8, help="prompts per generate call (hf)")
    add("--judge-max-new-tokens", type=int, default=96)
    add("--judge-device", default="cuda" if torch.cuda.is_available() else "cpu")
    add("--judge-dtype", choices=("float32", "bfloat16", "float16"), default=None, help="hf judge dtype")


def parse_judge_spec(spec: str) -> tuple[str, str]:
    """("deterministic", "") / ("hf", model) / ("openai", model); anything else is a one-line `ValueError`."""
    kind, _, name = spec.partition(":")
    if spec == "deterministic":
        return "deterministic", ""
    if kind not in ("hf", "openai") or not name.strip():
        raise ValueError(f"--judge: expected deterministic, hf:<model> or openai:<model>, got {spec!r}")
    return kind, name.strip()


def make_judge(spec: str, **options: Any) -> Judge:
    """A judge from "deterministic", "hf:<model>" or "openai:<model>"; `options` are `add_judge_arguments`' values
    without the "judge_" prefix (base_url, timeout, retries, workers, batch_size, max_new_tokens, device, dtype)."""
    kind, name = parse_judge_spec(spec)
    if kind == "deterministic":
        return DeterministicJudge()
    from theworld.evaluation.judge_llm import HFChatBackend, LLMJudge, OpenAIChatBackend

    if kind == "openai":
        backend: Any = OpenAIChatBackend(
            name,
            base_url=options.get("base_url"),
            timeout=float(options.get("timeout", 60.0)),
            max_retries=int(options.get("retries", 2)),
            workers=int(options.get("workers", 4)),
        )
    else:
        dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        device = str(options.get("device") or "cpu")
        dtype = dtypes[options.get("dtype") or ("bfloat16" if device.startswith("cuda") else "float32")]
        backend = HFChatBackend.load(
            name,
            device=device,
            dtype=dtype,
            batch_size=int(options.get("batch_size", 8)),
            max_new_tokens=int(options.get("max_new_tokens", 96)),
        )
    return LLMJudge(backend)


def judge_from_args(args: argparse.Namespace) -> Judge:
    options = {key.removeprefix("judge_"): value for key, value in vars(args).items() if key.startswith("judge_")}
    return make_judge(args.judge, **options)


# --- (re-)judging saved predictions ----------------------------------------------------------------------------------
def _needs_judging(done: Mapping[str, Any] | None, record: Mapping[str, Any]) -> bool:
    return done is None or done.get("prediction") != record.get("prediction") or bool(done.get("judge_retryable"))


def judge_records(
    records: Sequence[Mapping[str, Any]], judge: Judge, results: ResultsFile, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Judge prediction records into `results` (resumable); returns the judged records in the order of `records`."""
    done = {str(record["id"]): record for record in results.records()}
    todo = [record for record in records if _needs_judging(done.get(str(record["id"])), record)]
    if len(todo) < len(records):
        logger.info("%s: %d of %d item(s) already judged", judge.label, len(records) - len(todo), len(records))
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        questions = [SpatialQuestion.from_record(record) for record in chunk]
        verdicts = judge.judge_many(questions, [str(record.get("prediction", "")) for record in chunk])
        results.add(
            {**record, **verdict.fields(), "judge": judge.label}
            for record, verdict in zip(chunk, verdicts, strict=True)
        )
        logger.info("%s: judged %d/%d", judge.label, min(start + batch_size, len(todo)), len(todo))
    by_id = {str(record["id"]): record for record in results.records()}
    return [by_id[str(record["id"])] for record in records if str(record["id"]) in by_id]


def judged_path(predictions: str | os.PathLike[str], judge_label: str) -> Path:
    """Where the re-judged copy of a predictions file goes by default: `judged-<judge>.jsonl` beside it."""
    return Path(predictions).with_name(f"judged-{judge_slug(judge_label)}.jsonl")


def rejudge_file(
    predictions: str | os.PathLike[str],
    judge: Judge,
    output: str | os.PathLike[str] | None = None,
    resume: bool = True,
    only_ids: Collection[str] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    """Judge a saved predictions file again (no model needed): (its run header, judged records, output path).
    `only_ids` limits it to those items (an evaluation run with `--limit` judges what it evaluated)."""
    header, lines = read_results(predictions)
    records = list({str(record["id"]): record for record in lines if "id" in record}.values())  # last line wins
    if only_ids is not None:
        wanted = {str(item_id) for item_id in only_ids}
        records = [record for record in records if str(record["id"]) in wanted]
    target = Path(output) if output is not None else judged_path(predictions, judge.label)
    run = {
        "benchmark": header.get("benchmark"),
        "model": header.get("model"),
        "predictions": str(Path(predictions).resolve()),
        "judge": judge.label,
    }
    judged = judge_records(records, judge, ResultsFile(target, run, resume=resume))
    return header, judged, target
