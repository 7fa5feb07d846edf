"""The vLLM engine in-process, through the Engine Protocol: streaming, chat conversations and
per-request sampling, which /predict does not expose (the next endpoints will). One engine
for the module (a start costs 60-100 s on the 2-core machine); /predict itself is proven by
tests/http/test_api.py against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from llmserve.engines.base import ChatMessage, Delta, Engine, Prompt, Sampling
from llmserve.model import resolve_model_dir
from llmserve.settings import Settings
from llmserve.system import cpu_flags, cpu_model
from tests.conftest import TEST_ENV

pytestmark = pytest.mark.engine

QUESTION = "What is CUDA?"


class Harness:
    """The engine and the one event loop every call runs on (vLLM's output handler is bound
    to the loop of the first call)."""

    def __init__(self, engine: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def stream(
        self, prompt: Prompt, sampling: Sampling | None = None, stop_after: int | None = None
    ) -> list[Delta]:
        async def collect() -> list[Delta]:
            deltas: list[Delta] = []
            iterator = self.engine.stream(prompt, sampling)
            try:
                async for delta in iterator:
                    deltas.append(delta)
                    if stop_after is not None and len(deltas) >= stop_after:
                        break
            finally:
                await iterator.aclose()
            return deltas

        return self.run(collect())


@pytest.fixture(scope="module")
def vllm() -> Iterator[Harness]:
    from llmserve.engines.vllm.engine import VllmEngine

    fields = set(Settings.model_fields)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in TEST_ENV.items():  # the engine's processes read these too
            patch.setenv(name, value)
        settings = Settings(
            system_prompt="Answer in one sentence.",
            **{k.lower(): v for k, v in TEST_ENV.items() if k.lower() in fields},
        )
        engine = VllmEngine(settings, resolve_model_dir(settings))
        loop = asyncio.new_event_loop()
        harness = Harness(engine, loop)
        try:
            yield harness
        finally:
            engine.shutdown()
            # Finish vLLM's tasks in this loop (its output handler) as asyncio.run does: left
            # pending, they were finalized by a later garbage collection, which once ran inside
            # another test's ast.parse and broke it ("AST constructor recursion depth
            # mismatch", CPython 3.11).
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()


def test_is_an_engine(vllm: Harness) -> None:
    assert isinstance(vllm.engine, Engine) and not vllm.engine.dead
    facts = vllm.engine.facts()
    assert facts["chat_template"] is True
    # /info's CPU facts: the model, its flags that matter and why this dtype (the test
    # settings set DTYPE=float32).
    assert facts["cpu"] == cpu_model() and facts["cpu_flags"] == cpu_flags()
    assert facts["dtype"] == "float32" and facts["dtype_choice"] == "float32: set by DTYPE"


def test_stream_deltas_add_up_to_generate(vllm: Harness) -> None:
    whole = vllm.run(vllm.engine.generate([QUESTION]))
    deltas = vllm.stream(QUESTION)
    assert len(deltas) > 2  # it streamed, not one final chunk
    assert "".join(d.text for d in deltas) == whole.texts[0]
    last = deltas[-1]
    assert last.finished and not any(d.finished for d in deltas[:-1])
    assert last.finish_reason == whole.finish_reasons[0]
    assert last.output_tokens == whole.completion_tokens[0] == whole.output_tokens
    assert last.prompt_tokens == whole.prompt_tokens[0]


def test_closing_a_stream_aborts_the_request(vllm: Harness) -> None:
    deltas = vllm.stream(QUESTION, stop_after=2)
    assert len(deltas) == 2 and not deltas[-1].finished
    assert vllm.engine.llm.output_processor.get_num_unfinished_requests() == 0
    assert vllm.run(vllm.engine.generate(["Name one GPU vendor."])).texts[0].strip()


def test_chat_messages_with_a_system_message(vllm: Harness) -> None:
    as_user: list[ChatMessage] = [{"role": "user", "content": QUESTION}]
    talk: list[ChatMessage] = [
        {"role": "system", "content": "You are a pirate. Answer like one."},
        {"role": "user", "content": QUESTION},
    ]
    result = vllm.run(vllm.engine.generate([QUESTION, as_user, talk]))
    plain, user, pirate = result.texts
    assert plain == user  # a string is one user turn, SYSTEM_PROMPT first either way
    assert pirate.strip() and pirate != plain  # its own system message replaced SYSTEM_PROMPT
    assert result.prompt_tokens[0] == result.prompt_tokens[1] != result.prompt_tokens[2]
    streamed = "".join(d.text for d in vllm.stream(talk))
    assert streamed == pirate


def test_per_request_sampling(vllm: Harness) -> None:
    short = vllm.engine.sampling.replace(max_tokens=4)
    result = vllm.run(vllm.engine.generate([QUESTION, QUESTION], short))
    assert result.completion_tokens == [4, 4] and result.finish_reasons == ["length", "length"]
    whole = vllm.run(vllm.engine.generate([QUESTION]))
    assert whole.texts[0].startswith(result.texts[0])  # greedy: the same start, cut short
    deltas = vllm.stream(QUESTION, short)
    assert deltas[-1].output_tokens == 4 and deltas[-1].finish_reason == "length"
