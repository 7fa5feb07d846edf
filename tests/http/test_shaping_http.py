"""Shaping wired into the HTTP layer (fake engine: checks what reaches the engine and what
comes back; the real-engine proof is tests/http/test_shaping_engine.py)."""

from __future__ import annotations

import json
from pathlib import Path

from llmserve.shaping.router import LengthRouter, words
from tests.http.test_http import make_settings, serving


def test_predict_routes_hints_and_trims(tmp_path: Path) -> None:
    router = tmp_path / "router.json"
    examples = [(words("short question"), 3), (words("长 问题 解释"), 20)]
    router.write_text(json.dumps(LengthRouter.build(examples, 1, 1.0, 1).to_json()))
    settings = make_settings(tmp_path, length_router=router, budget_hint=True, max_sentences=1)
    with serving(settings) as (client, factory):
        reply = client.post("/predict", json={"prompt": ["short question", "长 问题 解释"]})
    assert reply.status_code == 200
    limits = sorted(call.sampling.max_tokens for call in factory.engine.calls)
    assert limits == [3, 20]  # two groups, one engine call each
    prompts = [p for call in factory.engine.calls for p in call.prompts]
    assert any("Answer within 3 tokens." in str(p) for p in prompts)
    assert any("Answer within 20 tokens." in str(p) for p in prompts)
    answers = reply.json()["response"]
    assert answers[0].startswith("echo: short")  # order kept
    assert answers[1].startswith("echo: 长")


def test_defaults_leave_prompts_and_answers_alone(tmp_path: Path) -> None:
    with serving(make_settings(tmp_path)) as (client, factory):
        reply = client.post("/predict", json={"prompt": "One. Two. Three"})
    assert reply.json()["response"] == "echo: One. Two. Three"
    assert factory.engine.calls[0].prompts == ["One. Two. Three"]
    assert factory.engine.calls[0].sampling.max_tokens == 32


def test_openai_post_processes_and_hints_but_does_not_route(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_sentences=1, budget_hint=True)
    with serving(settings) as (client, factory):
        model = client.get("/v1/models").json()["data"][0]["id"]
        messages = [{"role": "user", "content": "One. Two. Three"}]
        body = {"model": model, "messages": messages, "max_tokens": 16}
        reply = client.post("/v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"].count(".") == 1
    assert factory.engine.calls[0].sampling.max_tokens == 16
    assert "Answer within 16 tokens." in str(factory.engine.calls[0].prompts[0])
