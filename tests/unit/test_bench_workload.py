"""Prompts every system gets: exact synthetic lengths, the service's templating, data slices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmserve.bench.workload import PromptMaker, data_questions, data_slice
from llmserve.engines.render import PromptRenderer
from llmserve.errors import LlmserveError, ModelNotFound
from llmserve.model import resolve_model_dir
from llmserve.settings import Settings


@pytest.fixture(scope="module")
def renderer() -> PromptRenderer:
    try:
        model_dir = resolve_model_dir(Settings())
    except ModelNotFound as error:
        pytest.skip(str(error))
    from transformers import AutoTokenizer

    return PromptRenderer(AutoTokenizer.from_pretrained(model_dir), None, raw=False)


def test_synthetic_prompts_have_exact_templated_length(renderer: PromptRenderer) -> None:
    maker = PromptMaker(renderer, max_model_len=2048, max_new_tokens=16)
    for length in (40, 128, 257):
        batch = maker.synthetic(3, length, seed="t")
        assert [len(ids) for ids in batch.token_ids] == [length] * 3
        assert batch.max_tokens == [16] * 3
        assert batch.prompt_tokens == 3 * length


def test_token_ids_are_what_the_service_renders(renderer: PromptRenderer) -> None:
    maker = PromptMaker(renderer, max_model_len=2048, max_new_tokens=16)
    batch = maker.synthetic(2, 64, seed=1)
    # The service templates the user text with the same renderer: the ids must agree.
    assert renderer.token_ids(batch.prompts) == batch.token_ids
    assert renderer.text(batch.prompts[0]).endswith("assistant\n")
    # vllm serve gets the templated texts: tokenized its way, they are the same ids.
    assert batch.texts == [renderer.text(p) for p in batch.prompts]
    encoded = renderer.tokenizer(batch.texts, add_special_tokens=batch.special_tokens)
    assert [list(ids) for ids in encoded["input_ids"]] == batch.token_ids


def test_seeds_give_different_prompts_and_repeat_exactly(renderer: PromptRenderer) -> None:
    maker = PromptMaker(renderer, max_model_len=2048, max_new_tokens=16)
    one, again, other = (maker.synthetic(4, 64, seed=s) for s in ("a", "a", "b"))
    assert one.prompts == again.prompts
    assert len(set(one.prompts)) == 4  # within a batch: no shared prompts to cache
    assert not set(one.prompts) & set(other.prompts)


def test_max_tokens_follow_the_service_rule(renderer: PromptRenderer) -> None:
    maker = PromptMaker(renderer, max_model_len=100, max_new_tokens=64)
    batch = maker.synthetic(1, 60, seed=0)
    assert batch.max_tokens == [40]  # never past MAX_MODEL_LEN
    with pytest.raises(LlmserveError, match="MAX_MODEL_LEN"):
        maker.synthetic(1, 100, seed=0)


def test_input_len_below_the_template_is_refused(renderer: PromptRenderer) -> None:
    maker = PromptMaker(renderer, max_model_len=2048, max_new_tokens=16)
    with pytest.raises(LlmserveError, match="template"):
        maker.synthetic(1, 5, seed=0)


def test_data_questions_and_slices(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"Q{i}?"},
                                      {"role": "assistant", "content": "A"}]}
        for i in range(5)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    questions = data_questions(path)
    assert questions == [f"Q{i}?" for i in range(5)]
    assert data_slice(questions, 3, 0) == ["Q0?", "Q1?", "Q2?"]
    assert data_slice(questions, 3, 1) == ["Q3?", "Q4?", "Q0?"]  # wraps around
    with pytest.raises(LlmserveError):
        data_questions(tmp_path / "missing.jsonl")


def test_plan_gives_each_run_and_lane_its_own_prompts(renderer: PromptRenderer,
                                                     tmp_path: Path) -> None:
    from llmserve.bench.cli import build_parser, config_from
    from llmserve.bench.runner import make_plan

    config = config_from(build_parser().parse_args(
        ["--quick", "-n", "3", "--input-len", "40", "--repeats", "3", "--warmup", "1",
         "--latency-iters", "2", "--out", str(tmp_path)]))
    plan = make_plan(config, PromptMaker(renderer, 2048, 8), lanes=2)
    assert [len(plan.warmups(lane)) for lane in (0, 1)] == [1, 1]
    assert [len(plan.measured(lane)) for lane in (0, 1)] == [3, 3]
    prompts = [p for lane in plan.throughput for batch in lane for p in batch.prompts]
    assert len(set(prompts)) == len(prompts) == 2 * 4 * 3  # nothing repeats: no cache hits
    assert len(plan.latency) == 3  # one warm-up iteration and two measured
    full, first = plan.latency[0]
    assert len(full.token_ids[0]) == len(first.token_ids[0]) == 40
    assert full.prompts != first.prompts
