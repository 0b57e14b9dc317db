"""LLM judges for SpatialRGPT-Bench: the paper's JSON protocol on a local HF causal LM or an OpenAI-compatible API.

The judge model is asked (as in the SpatialRGPT paper's GPT-4 protocol) for JSON only:
qualitative `{"your_mark": 0 or 1}`; distances and sizes `{"answer_in_meters": x, "response_in_meters": y}`;
direction `{"answer_direction": h, "response_direction": h}`. The numbers it returns are scored with the rules of
`theworld.evaluation.judges` (25% of the gt in meters; within 1 clock hour). Malformed JSON, a missing key, a
non-number, an HTTP error or a timeout makes the item `unjudged` with that reason — never a 0. A `null` response value
means the judge found no answer in the response: judged wrong (`NO_ANSWER`).

Backends: `HFChatBackend` (any `AutoModelForCausalLM` checkpoint with a chat template; greedy, batched with left
padding) and `OpenAIChatBackend` (POST `{base_url}/chat/completions` with stdlib urllib; base URL from the argument,
else $OPENAI_BASE_URL, else api.openai.com; key from $OPENAI_API_KEY; per-request timeout; bounded retries with
backoff on HTTP 429/5xx and timeouts; an HTTP 401/403/404 stops the run with one line, since no item can succeed).
[Contract] the API key is sent only in the Authorization header: it is never logged, written, or part of a repr.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import torch

from theworld.evaluation.judges import Judgement, score_direction, score_length, unjudged
from theworld.evaluation.spatial_bench import NO_ANSWER, UNKNOWN_CATEGORY, SpatialQuestion

logger = logging.getLogger(__name__)

Messages = list[dict[str, str]]
SYSTEM_PROMPT = "You are a helpful assistant designed to output JSON."
_QUALITATIVE = """You are grading the response to a spatial question about an image, given the correct answer.
Read the meaning of both. If the response says the same as the correct answer (the wording may differ), mark it 1;
if it says something different or gives no answer, mark it 0.
Reply with JSON only, {{"your_mark": 1}} or {{"your_mark": 0}}.

Question: {question}
Correct answer: {answer}
Response: {response}"""
_LENGTH = """You are grading the response to a spatial measurement question about an image, given the correct answer.
Convert the length in the correct answer and the length in the response to meters
(1 inch = 0.0254 m, 1 foot = 0.3048 m, 1 yard = 0.9144 m, 1 centimeter = 0.01 m, 1 millimeter = 0.001 m).
Reply with JSON only: {{"answer_in_meters": <number>, "response_in_meters": <number, or null if the response gives
no length>}}.
Example: correct answer "The height of Region [1] is 10.0 inches.", response "It is 48.47 centimeters." gives
{{"answer_in_meters": 0.254, "response_in_meters": 0.4847}}.

Question: {question}
Correct answer: {answer}
Response: {response}"""
_DIRECTION = """You are grading the response to a direction question about an image, given the correct answer.
Convert the direction in the correct answer and in the response to clock hours (12 o'clock = 12, 1 o'clock = 1, ...).
Reply with JSON only: {{"answer_direction": <integer 1-12>, "response_direction": <integer 1-12, or null if the
response gives no direction>}}.
Example: correct answer "Region [0] will find Region [1] around the 10 o'clock direction.", response "It is at 9
o'clock." gives {{"answer_direction": 10, "response_direction": 9}}.

Question: {question}
Correct answer: {answer}
Response: {response}"""
_TEMPLATES = {"predicate": _QUALITATIVE, "choice": _QUALITATIVE, "length": _LENGTH, "direction": _DIRECTION}
_KEYS: dict[str, tuple[str, ...]] = {
    "predicate": ("your_mark",),
    "choice": ("your_mark",),
    "length": ("answer_in_meters", "response_in_meters"),
    "direction": ("answer_direction", "response_direction"),
}
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})


class JudgeBackendError(Exception):
    """A judge request that failed: `reason` is short and categorical ("judge: HTTP 500", "judge: timeout")."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class ChatBackend(Protocol):
    label: str

    def complete_many(self, conversations: Sequence[Messages]) -> list[str | JudgeBackendError]: ...


def judge_messages(question: SpatialQuestion, prediction: str) -> Messages | None:
    """The chat messages asking for the judgement of one prediction; None for an unknown category."""
    template = _TEMPLATES.get(question.kind)
    if template is None:
        return None
    prompt = template.format(question=question.question, answer=question.answer, response=prediction.strip())
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's output (also inside ```json fences or after some prose), else None."""
    decoder = json.JSONDecoder()
    for start in (i for i, char in enumerate(text) if char == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def judgement_from_output(question: SpatialQuestion, output: str) -> Judgement:
    """Score a judge model's reply (see the module docstring for what makes it unjudged)."""
    data = parse_json_object(output)
    if data is None:
        return unjudged("judge: malformed JSON", judge_output=output)
    kind = question.kind
    if kind not in _KEYS:
        return unjudged(UNKNOWN_CATEGORY, judge_output=output)
    missing = [key for key in _KEYS[kind] if key not in data]
    if missing:
        return unjudged(f"judge: missing key {missing[0]!r}", judge_output=output)
    if kind in ("predicate", "choice"):
        mark = _number(data["your_mark"])
        if mark not in (0.0, 1.0):
            return unjudged("judge: your_mark is not 0 or 1", judge_output=output)
        return Judgement(mark == 1.0, judge_output=output)
    answer_key, response_key = _KEYS[kind]
    gt, pred = _number(data[answer_key]), _number(data[response_key])
    if gt is None or (pred is None and data[response_key] is not None):
        bad = answer_key if gt is None else response_key
        return unjudged(f"judge: {bad} is not a number", judge_output=output)
    if kind == "length":
        return score_length(gt, pred, judge_output=output)
    if (
        not float(gt).is_integer()
        or not 1 <= gt <= 12
        or (pred is not None and not (pred.is_integer() and 1 <= pred <= 12))
    ):
        return unjudged("judge: direction is not an hour 1-12", judge_output=output)
    return score_direction(int(gt), None if pred is None else int(pred), judge_output=output)


class LLMJudge:
    """A judge that asks `backend` (a chat model) for the paper's JSON and scores the numbers it returns."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend
        self.label = backend.label

    def judge(self, question: SpatialQuestion, prediction: str) -> Judgement:
        return self.judge_many([question], [prediction])[0]

    def judge_many(self, questions: Sequence[SpatialQuestion], predictions: Sequence[str]) -> list[Judgement]:
        verdicts: list[Judgement | None] = [None] * len(questions)
        asked: list[int] = []
        conversations: list[Messages] = []
        for index, (question, prediction) in enumerate(zip(questions, predictions, strict=True)):
            messages = judge_messages(question, prediction)
            if messages is None:
                verdicts[index] = unjudged(UNKNOWN_CATEGORY)
            elif not prediction.strip():
                verdicts[index] = Judgement(False, reason=NO_ANSWER)  # nothing to ask the judge about
            else:
                asked.append(index)
                conversations.append(messages)
        for index, output in zip(asked, self.backend.complete_many(conversations), strict=True):
            if isinstance(output, JudgeBackendError):
                verdicts[index] = unjudged(output.reason, retryable=output.retryable)
            else:
                verdicts[index] = judgement_from_output(questions[index], output)
        return [verdict if verdict is not None else unjudged("judge: no verdict") for verdict in verdicts]


class HFChatBackend:
    """Greedy chat completions from a local Hugging Face causal LM (the system prompt is folded into the user turn,
    since not every chat template has a system role)."""

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8, max_new_tokens: int = 96) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.label = f"hf:{name}"
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def load(cls, name: str, device: str = "cpu", dtype: torch.dtype = torch.float32, **options: Any) -> HFChatBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
            model: Any = AutoModelForCausalLM.from_pretrained(name, dtype=dtype)
            model = model.to(device)
        except (OSError, ValueError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"--judge hf:{name}: cannot load the judge model: {first}") from None
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"--judge hf:{name}: the tokenizer has no chat template (use an instruction-tuned model)")
        return cls(model, tokenizer, name, **options)

    def _render(self, messages: Messages) -> str:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [dict(m) for m in messages if m["role"] != "system"]
        if system and turns:
            turns[0]["content"] = f"{system}\n\n{turns[0]['content']}"
        return str(self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False))

    @torch.no_grad()
    def complete_many(self, conversations: Sequence[Messages]) -> list[str | JudgeBackendError]:
        outputs: list[str | JudgeBackendError] = []
        for start in range(0, len(conversations), self.batch_size):
            texts = [self._render(messages) for messages in conversations[start : start + self.batch_size]]
            batch = self.tokenizer(
                texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
            ).to(self.model.device)
            generated = self.model.generate(
                **batch,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]
            outputs += [str(text).strip() for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        return outputs


class OpenAIChatBackend:
    """Chat completions from an OpenAI-compatible endpoint over stdlib urllib (see the module docstring)."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        backoff: float = 1.0,
        workers: int = 4,
        json_mode: bool = True,
    ) -> None:
        base = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self.__key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not self.__key and "api.openai.com" in self.url:
            raise ValueError("--judge openai: set OPENAI_API_KEY (or --judge-base-url for a local server)")
        if timeout <= 0 or max_retries < 0 or workers <= 0:
            raise ValueError("--judge-timeout/--judge-retries/--judge-workers: expected > 0, >= 0, > 0")
        self.model, self.label = model, f"openai:{model}"
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.workers, self.json_mode = workers, json_mode

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChatBackend(model={self.model!r}, url={self.url!r})"

    def complete_many(self, conversations: Sequence[Messages]) -> list[str | JudgeBackendError]:
        if self.workers == 1 or len(conversations) <= 1:
            return [self.complete(messages) for messages in conversations]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="openai-judge") as pool:
            return list(pool.map(self.complete, conversations))

    def complete(self, messages: Messages) -> str | JudgeBackendError:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        data = json.dumps(body).encode("utf-8")
        failure = JudgeBackendError("judge: no attempt")
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                payload = self._post(data)
            except JudgeBackendError as error:
                failure = error
                if not error.retryable:
                    return error
                logger.debug("%s: attempt %d failed: %s", self.label, attempt + 1, error.reason)
                continue
            try:
                content = json.loads(payload)["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                return JudgeBackendError("judge: response is not a chat completion")
            return content if isinstance(content, str) else JudgeBackendError("judge: response has no text content")
        return failure

    def _post(self, data: bytes) -> bytes:
        headers = {"Content-Type": "application/json"}
        if self.__key:
            headers["Authorization"] = f"Bearer {self.__key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            if error.code in FATAL_STATUS:
                raise ValueError(
                    f"--judge {self.label}: HTTP {error.code} from {self.url} "
                    "(check OPENAI_API_KEY, --judge-base-url and the model name)"
                ) from None
            raise JudgeBackendError(f"judge: HTTP {error.code}", retryable=error.code in RETRY_STATUS) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):  # socket.timeout is TimeoutError
                raise JudgeBackendError("judge: timeout", retryable=True) from None
            raise JudgeBackendError("judge: connection failed", retryable=True) from None
        except TimeoutError:
            raise JudgeBackendError("judge: timeout", retryable=True) from None
        except (ConnectionError, http.client.HTTPException):
            raise JudgeBackendError("judge: connection failed", retryable=True) from None
