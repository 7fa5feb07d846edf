"""The engine seam's values over the wire to a worker process (llmserve/engines/process/wire.py):
every prompt kind, sampling, generations, deltas and errors come back equal."""

from __future__ import annotations

import json

from llmserve.engines.base import (
    Delta,
    EngineDead,
    EngineError,
    Generation,
    PromptRejected,
    PromptTooLong,
    RawText,
    Sampling,
    TokenIds,
    TokenLogprob,
)
from llmserve.engines.process import wire


def through_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_prompts_of_every_kind_round_trip() -> None:
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    for prompt in ("你好", conversation, RawText("Q: 1+1=\nA:"), TokenIds((1, 2, 3))):
        assert wire.decode_prompt(through_json(wire.encode_prompt(prompt))) == prompt  # type: ignore[arg-type]


def test_sampling_generation_and_delta_round_trip() -> None:
    sampling = Sampling(max_tokens=7, temperature=0.5, stop=("\n", "。"), seed=3)
    assert wire.decode_sampling(through_json(wire.encode_sampling(sampling))) == sampling  # type: ignore[arg-type]
    assert wire.decode_sampling(wire.encode_sampling(None)) is None
    generation = Generation(["a", "b"], [3, 4], [1, 2], ["stop", "length"], 0.5, 0.01)
    assert wire.decode_generation(through_json(wire.encode_generation(generation))) == generation  # type: ignore[arg-type]
    delta = Delta("x", 2, 5, "stop")
    assert wire.decode_delta(through_json(wire.encode_delta(delta))) == delta  # type: ignore[arg-type]


def test_logprobs_round_trip() -> None:
    """Echo and logprobs cross the wire: per prompt, TokenLogprob lists (or None)."""
    sampling = Sampling(max_tokens=0, logprobs=2, prompt_logprobs=2)
    assert wire.decode_sampling(through_json(wire.encode_sampling(sampling))) == sampling  # type: ignore[arg-type]
    first = TokenLogprob("The", 504, None)
    second = TokenLogprob(" cat", 9, -1.5, ((" dog", -0.5), (" cat", -1.5)))
    generation = Generation(["", ""], [2, 1], [0, 0], ["length", "length"], 0.5, None,
                            logprobs=[[], None], prompt_logprobs=[[first, second], [first]])
    assert wire.decode_generation(through_json(wire.encode_generation(generation))) == generation  # type: ignore[arg-type]
    delta = Delta(" cat", 2, 5, index=1, logprobs=[second])  # a streamed step's tokens
    assert wire.decode_delta(through_json(wire.encode_delta(delta))) == delta  # type: ignore[arg-type]


def test_errors_come_back_as_the_same_exceptions() -> None:
    body = through_json(wire.encode_error(PromptRejected("bad id", "tokens")))
    rejected = wire.decode_error(body)  # type: ignore[arg-type]
    assert isinstance(rejected, PromptRejected) and rejected.param == "tokens"
    too_long = wire.decode_error(through_json(wire.encode_error(PromptTooLong(2, 900, 512))))  # type: ignore[arg-type]
    assert isinstance(too_long, PromptTooLong)
    assert (too_long.index, too_long.tokens, too_long.limit) == (2, 900, 512)
    assert str(too_long) == str(PromptTooLong(2, 900, 512))
    dead = wire.decode_error(through_json(wire.encode_error(EngineDead("core gone"))))  # type: ignore[arg-type]
    assert isinstance(dead, EngineDead) and str(dead) == "core gone"
    other = wire.decode_error({"error": "engine_error", "message": "boom"})
    assert type(other) is EngineError and str(other) == "boom"
