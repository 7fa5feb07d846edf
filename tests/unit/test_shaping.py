"""Answer shaping without an engine: CJK/English post-processing, length routing, the hint,
and routed generation's grouping and reordering (a recording generate function)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from llmserve.engines.base import Generation, Prompt, RawText, Sampling
from llmserve.errors import LlmserveError
from llmserve.shaping.apply import shaped_generate
from llmserve.shaping.cli import main as shape_main
from llmserve.shaping.hint import add_hint
from llmserve.shaping.postprocess import (
    cut_repeats,
    limit_sentences,
    shape_text,
    split_sentences,
    trim_unfinished,
)
from llmserve.shaping.router import LengthRouter, load_router, words
from llmserve.shaping.settings import ShapingSettings

# --- post-processing -----------------------------------------------------------------------


def test_split_cjk_without_spaces() -> None:
    assert split_sentences("共享内存很快。寄存器更快！为什么？因为") == [
        "共享内存很快。",
        "寄存器更快！",
        "为什么？",
        "因为",
    ]


def test_split_keeps_decimals_and_abbreviations() -> None:
    text = "Pi is 3.14 roughly. Use e.g. tiling, i.e. blocks. Done"
    assert split_sentences(text) == [
        "Pi is 3.14 roughly.",
        " Use e.g. tiling, i.e. blocks.",
        " Done",
    ]


def test_trim_unfinished_cjk_and_english() -> None:
    assert (
        trim_unfinished("线程束包含32个线程。它们同时执行指令，但是分支") == "线程束包含32个线程。"
    )
    assert trim_unfinished("A warp has 32 threads. They run in lock") == "A warp has 32 threads."
    assert trim_unfinished("A warp has 32 threads.") == "A warp has 32 threads."
    assert trim_unfinished("no sentence end at all") == "no sentence end at all"
    assert trim_unfinished("The value is 3.14") == "The value is 3.14"


def test_newline_ends_a_sentence() -> None:
    assert trim_unfinished("1. First item\n2. Second ite") == "1. First item"


def test_cut_repeats_cjk_loop_and_english_loop() -> None:
    loop = "内存带宽很重要。缓存可以帮助。缓存可以帮助。缓存可以帮助。"
    assert cut_repeats(loop) == "内存带宽很重要。缓存可以帮助。"
    assert cut_repeats("It is fast. It is fast. It is fast.") == "It is fast."
    assert cut_repeats("One. Two. Three.") == "One. Two. Three."


def test_limit_sentences() -> None:
    assert limit_sentences("第一句。第二句。第三句。", 2) == "第一句。第二句。"
    assert limit_sentences("One. Two! Three?", 1) == "One."
    assert limit_sentences("One.", 3) == "One."


def test_shape_text_all_off_is_identity() -> None:
    text = "重复。重复。未完"
    assert shape_text(text, trim=False, repeats=False, max_sentences=0) == text
    assert shape_text(text, trim=True, repeats=True, max_sentences=0) == "重复。"


# --- hint ----------------------------------------------------------------------------------


def test_hint_goes_into_the_user_turn() -> None:
    assert add_hint("What is CUDA?", 40).endswith("Answer within 40 tokens.")
    chat: Prompt = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "什么是 CUDA？"},
    ]
    hinted = add_hint(chat, 64)
    assert isinstance(hinted, list)
    assert hinted[0]["content"] == "Be brief."
    assert hinted[1]["content"] == "什么是 CUDA？\n\nAnswer within 64 tokens."
    assert chat[1]["content"] == "什么是 CUDA？"  # the original is untouched
    assert add_hint(RawText("raw"), 10) == RawText("raw")


# --- router --------------------------------------------------------------------------------

EXAMPLES = [
    (words("什么是共享内存？"), 200),
    (words("共享内存的银行冲突是什么？"), 220),
    (words("What is a warp?"), 20),
    (words("Define a warp in CUDA"), 24),
]


def test_router_routes_by_nearest_words_cjk_and_english() -> None:
    router = LengthRouter.build(EXAMPLES, k=2, margin=1.0, min_tokens=8)
    assert router.route("共享内存有什么用？", 512) == 210
    assert router.route("What does a warp do?", 512) == 22
    assert router.route("共享内存有什么用？", 128) == 128  # clamped to the request's max
    small = LengthRouter.build(EXAMPLES, k=2, margin=0.1, min_tokens=8)
    assert small.route("What is a warp?", 512) == 8  # clamped to min_tokens


def test_router_file_round_trip(tmp_path: Path) -> None:
    router = LengthRouter.build(EXAMPLES, k=2, margin=1.2, min_tokens=8)
    path = tmp_path / "router.json"
    path.write_text(json.dumps(router.to_json()), encoding="utf-8")
    again = load_router(path)
    for question in ["共享内存有什么用？", "What does a warp do?"]:
        assert again.route(question, 512) == router.route(question, 512)


def test_bad_router_file_names_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(LlmserveError, match="LENGTH_ROUTER="):
        load_router(path)


def test_shape_cli_help_and_unknown() -> None:
    assert shape_main(["--help"]) == 0
    assert shape_main(["nope"]) == 2


# --- routed generation ---------------------------------------------------------------------


def test_routed_generation_groups_and_restores_order(tmp_path: Path) -> None:
    router = LengthRouter.build(EXAMPLES, k=2, margin=1.0, min_tokens=8)
    path = tmp_path / "router.json"
    path.write_text(json.dumps(router.to_json()), encoding="utf-8")
    calls: list[tuple[list[Prompt], int]] = []

    async def generate(prompts: list[Prompt], sampling: Sampling) -> Generation:
        calls.append((prompts, sampling.max_tokens))
        texts = [f"{p}|{sampling.max_tokens}. tail" for p in prompts]
        n = len(prompts)
        return Generation(texts, [1] * n, [sampling.max_tokens] * n, ["length"] * n, 1.0, 0.1)

    prompts: list[Prompt] = ["What is a warp?", "共享内存有什么用？", "Define a warp"]
    shaping = ShapingSettings(length_router=path, trim_unfinished=True)
    result = asyncio.run(shaped_generate(generate, prompts, Sampling(max_tokens=512), shaping))
    assert sorted(limit for _, limit in calls) == [22, 210]
    assert result.texts == ["What is a warp?|22.", "共享内存有什么用？|210.", "Define a warp|22."]
    assert result.completion_tokens == [22, 210, 22]  # the engine's counts, not the trimmed
