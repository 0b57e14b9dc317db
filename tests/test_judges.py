"""SpatialRGPT-Bench judges: deterministic verdicts, the success rules, the LLM judges (stub server, tiny LM)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from theworld.evaluation.judge_llm import (
    SYSTEM_PROMPT,
    HFChatBackend,
    LLMJudge,
    OpenAIChatBackend,
    judge_messages,
    judgement_from_output,
)
from theworld.evaluation.judges import DeterministicJudge, judge_records, make_judge, score_length
from theworld.evaluation.results import ResultsFile
from theworld.evaluation.spatial_bench import NO_ANSWER, SpatialQuestion
from theworld.evaluation.spatial_bench_data import load_items
from theworld.testing import TinyCheckpoints
from theworld.testing.spatial_bench_fixtures import write_spatial_bench
from theworld.testing.stub_openai import StubOpenAI, StubReply, json_reply

KEY = "sk-test-SECRET-0123456789"
JUDGE = DeterministicJudge()


def question(
    category: str, answer: str, text: str = "Is Region [0] behind Region [1]?", **extra: object
) -> SpatialQuestion:
    return SpatialQuestion(id="q", category=category, question=text, answer=answer, **extra)  # type: ignore[arg-type]


WIDTH_2M = question("width_data", "The width of Region [0] is 2 meters.", "Measure the width of Region [0].")
DISTANCE = question("distance_data", "Region [0] and Region [1] are 2.3 meters apart.", "How far apart are they?")
DIRECTION_12 = question("direction", "Region [0] will find Region [1] around the 12 o'clock direction.")
BEHIND_YES = question("behind_predicate", "Yes, Region [0] is behind Region [1].")
TALLER_1 = question("tall_choice", "Region [1] is taller.", "Who is taller, Region [0] or Region [1]?")


@pytest.mark.parametrize(
    ("q", "prediction", "correct", "error"),
    [
        (WIDTH_2M, "It is 2.5 meters wide.", True, 0.25),  # the 25% boundary is inclusive
        (WIDTH_2M, "It is 2.51 meters wide.", False, 0.255),
        (WIDTH_2M, "1.5 m", True, 0.25),
        (WIDTH_2M, "1.49 m", False, 0.255),
        (question("height_data", "4 feet"), "5 feet", True, 0.25),  # exact 25% after unit conversion
        (question("height_data", "6.91 feet"), "Region [0] is 2.1 meters tall.", True, 0.00293),
        (DISTANCE, "About 230 centimeters.", True, 0.0),
        (DIRECTION_12, "at 1 o'clock", True, 30.0),  # 12 and 1 are one hour apart
        (DIRECTION_12, "Region [1] is at 2 o'clock.", False, 60.0),
        (question("direction", "at 1 o'clock"), "eleven o'clock", False, 60.0),
        (question("direction", "Region [0] is at 10 o'clock from Region [1]."), "10:00", True, 0.0),
        (BEHIND_YES, "No.", False, None),
        (BEHIND_YES, "Region [0] is behind Region [1].", True, None),  # a statement answers the predicate
        (BEHIND_YES, "Region [0] is not behind Region [1].", False, None),
        (question("behind_predicate", "That is False."), "No, it is not.", True, None),
        (TALLER_1, "Region [1] is taller than Region [0].", True, None),
        (TALLER_1, "Region [0].", False, None),
        (question("tall_choice", "Region [1] is taller.", region_names=("red", "green")), "The green one.", True, None),
    ],
)
def test_deterministic_verdicts(q: SpatialQuestion, prediction: str, correct: bool, error: float | None) -> None:
    verdict = JUDGE.judge(q, prediction)
    assert verdict.correct is correct
    assert verdict.reason == ""
    if error is None:
        assert verdict.error is None
    else:
        assert verdict.error == pytest.approx(error, abs=1e-3)


@pytest.mark.parametrize(
    ("q", "prediction"),
    [
        (DISTANCE, "Region [0] is far from Region [1]."),  # the reference scorers read "0" here
        (DISTANCE, "I cannot determine the distance from this image."),
        (DIRECTION_12, "It is to the left."),
        (BEHIND_YES, "Region [0] is in front of Region [1]."),  # the opposite relation: no yes/no to read
        (TALLER_1, "They are equally tall."),
    ],
)
def test_a_prediction_without_an_answer_is_wrong_not_zero(q: SpatialQuestion, prediction: str) -> None:
    verdict = JUDGE.judge(q, prediction)
    assert verdict.correct is False
    assert verdict.reason == NO_ANSWER
    assert verdict.pred_value is None and verdict.error is None


@pytest.mark.parametrize(
    ("q", "reason"),
    [
        (
            question("vertical_distance_data", "Since they overlap, the vertical distance is hard to tell."),
            "gt: no length",
        ),
        (question("vertical_distance_data", "0 meters"), "gt: zero length"),
        (question("direction", "Region [1] is to the left."), "gt: no clock direction"),
        (question("behind_predicate", "Region [0] and Region [1] are at the same depth."), "gt: no yes/no"),
        (question("tall_choice", "Neither is taller."), "gt: no region"),
        (question("distance_estimate", "2 meters"), "unknown category"),
    ],
)
def test_an_undecidable_item_is_unjudged_with_its_reason(q: SpatialQuestion, reason: str) -> None:
    verdict = JUDGE.judge(q, "Yes, Region [0] is 2 meters away at 3 o'clock.")
    assert verdict.correct is None
    assert verdict.reason == reason


def test_score_length_rejects_a_missing_or_zero_ground_truth() -> None:
    assert score_length(None, 1.0).correct is None
    assert score_length(0.0, 0.0).correct is None
    assert score_length(2.0, None).reason == NO_ANSWER


def test_every_fixture_answer_is_read_as_written_and_judged_right(tmp_path: Path) -> None:
    bench = write_spatial_bench(tmp_path, include_unknown=True)
    items, _ = load_items(bench.root)
    for item in items:
        q = SpatialQuestion.from_item(item)
        verdict = JUDGE.judge(q, item.reference)
        expected = bench.expected[item.id]
        if q.kind == "unknown":
            assert verdict.correct is None
            continue
        assert verdict.correct is True, (item.group, item.reference, verdict)
        gt = verdict.gt_value == "yes" if q.kind == "predicate" else verdict.gt_value
        assert gt == pytest.approx(expected, rel=1e-9), item.reference


# --- LLM judges ------------------------------------------------------------------------------------------------------
def test_judge_output_parsing() -> None:
    good = judgement_from_output(DISTANCE, 'Sure: ```json\n{"answer_in_meters": 2.3, "response_in_meters": 2.0}\n```')
    assert good.correct is True and good.error == pytest.approx(0.3 / 2.3)
    assert judgement_from_output(DISTANCE, '{"answer_in_meters": 2.3, "response_in_meters": null}').reason == NO_ANSWER
    assert judgement_from_output(DIRECTION_12, '{"answer_direction": 12, "response_direction": 13}').correct is None
    assert judgement_from_output(BEHIND_YES, '{"your_mark": 2}').correct is None
    assert judgement_from_output(BEHIND_YES, '{"your_mark": true}').correct is None  # not a number
    assert judgement_from_output(BEHIND_YES, "mark: 1").reason == "judge: malformed JSON"


SCRIPT = {
    "GOOD-QUAL": json_reply({"your_mark": 1}),
    "GOOD-LEN": json_reply({"answer_in_meters": 2.3, "response_in_meters": 2.0}),
    "NULL-LEN": json_reply({"answer_in_meters": 2.3, "response_in_meters": None}),
    "GOOD-DIR": json_reply({"answer_direction": 12, "response_direction": 1}),
    "FENCED": StubReply(content='```json\n{"your_mark": 0}\n```'),
    "MALFORMED": StubReply(content='{"answer_in_meters": 2.3, "response_in_meters": '),
    "MISSING": json_reply({"answer_in_meters": 2.3}),
    "NOT-A-NUMBER": json_reply({"answer_in_meters": "two", "response_in_meters": 2.0}),
    "HTTP-500": StubReply(status=500),
    "NOT-COMPLETION": StubReply(body=b'{"object": "error"}'),
    "SLOW": StubReply(content='{"your_mark": 1}', delay=3.0),
}
EXPECTED = {  # marker: (question, correct, reason)
    "GOOD-QUAL": (BEHIND_YES, True, ""),
    "GOOD-LEN": (DISTANCE, True, ""),
    "NULL-LEN": (DISTANCE, False, NO_ANSWER),
    "GOOD-DIR": (DIRECTION_12, True, ""),
    "FENCED": (BEHIND_YES, False, ""),
    "MALFORMED": (DISTANCE, None, "judge: malformed JSON"),
    "MISSING": (DISTANCE, None, "judge: missing key 'response_in_meters'"),
    "NOT-A-NUMBER": (DISTANCE, None, "judge: answer_in_meters is not a number"),
    "HTTP-500": (BEHIND_YES, None, "judge: HTTP 500"),
    "NOT-COMPLETION": (BEHIND_YES, None, "judge: response is not a chat completion"),
    "SLOW": (BEHIND_YES, None, "judge: timeout"),
}


def test_openai_judge_against_the_stub_server(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    with StubOpenAI(rules=list(SCRIPT.items())) as stub:
        backend = OpenAIChatBackend("stub-judge", base_url=stub.base_url, api_key=KEY, timeout=0.5, max_retries=1,
                                    backoff=0.01, workers=4)  # fmt: skip
        judge = LLMJudge(backend)
        markers = list(EXPECTED)
        verdicts = judge.judge_many([EXPECTED[m][0] for m in markers], [f"answer {m}" for m in markers])
        requests = list(stub.requests)
    for marker, verdict in zip(markers, verdicts, strict=True):
        _, correct, reason = EXPECTED[marker]
        assert (verdict.correct, verdict.reason) == (correct, reason), marker
    assert verdicts[markers.index("GOOD-DIR")].error == 30.0
    assert verdicts[markers.index("HTTP-500")].retryable and verdicts[markers.index("SLOW")].retryable
    assert not verdicts[markers.index("MALFORMED")].retryable
    per_marker = {m: sum(f"answer {m}" in r.text for r in requests) for m in markers}
    assert per_marker["HTTP-500"] == 2 and per_marker["SLOW"] == 2 and per_marker["GOOD-QUAL"] == 1  # bounded retries
    assert all(r.path == "/v1/chat/completions" and r.authorization == f"Bearer {KEY}" for r in requests)
    body = requests[0].body
    assert (
        body["model"] == "stub-judge" and body["temperature"] == 0 and body["messages"][0]["content"] == SYSTEM_PROMPT
    )
    assert KEY not in caplog.text and KEY not in repr(backend) and KEY not in repr(verdicts)


def test_openai_judge_without_retries_asks_once_and_refuses_a_bad_key() -> None:
    with StubOpenAI(default=StubReply(status=503)) as stub:
        backend = OpenAIChatBackend("m", base_url=stub.base_url, api_key=KEY, timeout=2, max_retries=0, workers=1)
        assert LLMJudge(backend).judge(BEHIND_YES, "yes").reason == "judge: HTTP 503"
        assert len(stub.requests) == 1
    with StubOpenAI(default=StubReply(status=401)) as stub:
        backend = OpenAIChatBackend("m", base_url=stub.base_url, api_key=KEY, timeout=2, max_retries=3, workers=1)
        with pytest.raises(ValueError, match="HTTP 401") as raised:
            LLMJudge(backend).judge(BEHIND_YES, "yes")
        assert KEY not in str(raised.value) and len(stub.requests) == 1


def test_rejudging_is_resumable_and_retries_only_transient_failures(tmp_path: Path) -> None:
    records = [
        {"id": marker, "prompt": q.question, "reference": q.answer, "prediction": f"answer {marker}",
         "meta": {"category": q.category, "num_regions": 2}}
        for marker, q in (("GOOD-QUAL", BEHIND_YES), ("HTTP-500", BEHIND_YES), ("MALFORMED", DISTANCE))
    ]  # fmt: skip
    target = tmp_path / "judged.jsonl"
    with StubOpenAI(rules=list(SCRIPT.items())) as stub:
        backend = OpenAIChatBackend("m", base_url=stub.base_url, api_key=KEY, max_retries=0, workers=1)
        first = judge_records(records, LLMJudge(backend), ResultsFile(target, {"run": 1}))
        assert [r["correct"] for r in first] == [True, None, None]
        stub.rules = [("HTTP-500", json_reply({"your_mark": 0})), *SCRIPT.items()]
        asked = len(stub.requests)
        second = judge_records(records, LLMJudge(backend), ResultsFile(target, {"run": 1}))
        assert len(stub.requests) == asked + 1  # only the transient failure is asked again
    assert [(r["correct"], r["reason"]) for r in second] == [(True, ""), (False, ""), (None, "judge: malformed JSON")]
    assert KEY not in target.read_text()


def test_make_judge_rejects_bad_specs_in_one_line() -> None:
    for spec in ("gpt4", "openai:", "hf: ", "claude:x"):
        with pytest.raises(ValueError, match="--judge"):
            make_judge(spec)
    with pytest.raises(ValueError, match="cannot load the judge model"):
        make_judge("hf:/no/such/judge-model")


def test_hf_judge_plumbing_on_the_tiny_gemma(tiny: TinyCheckpoints, tmp_path: Path) -> None:
    bench = write_spatial_bench(tmp_path, include_unknown=True)
    items, _ = load_items(bench.root)
    picked = [items[0], items[4], items[22], items[32], items[-1]]  # predicate, choice, distance, direction, unknown
    questions = [SpatialQuestion.from_item(item) for item in picked]
    predictions = ["Yes.", "Region [1].", "2 meters", "at 10 o'clock", "2 meters"]
    backend = HFChatBackend.load(str(tiny.gemma), batch_size=4, max_new_tokens=8)
    rendered = backend._render(judge_messages(questions[2], predictions[2]) or [])
    assert rendered.count("<start_of_turn>user") == 1 and SYSTEM_PROMPT in rendered and "answer_in_meters" in rendered
    judge = LLMJudge(backend)
    assert judge.label == f"hf:{tiny.gemma}"
    batched = judge.judge_many(questions, predictions)
    backend.batch_size = 1
    single = judge.judge_many(questions, predictions)
    assert [v.judge_output for v in batched] == [v.judge_output for v in single]  # batching changes nothing
    assert [v.reason for v in batched] == ["judge: malformed JSON"] * 4 + ["unknown category"]  # random LM: no JSON
    assert all(v.correct is None and v.judge_output for v in batched[:4])
    assert json.dumps([v.fields() for v in batched])  # records stay JSON
