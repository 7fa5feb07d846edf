"""GET /metrics: the Prometheus text (read back with prometheus_client's own parser) counts
/predict and /v1 requests alike, per engine replica; fake engine first (seconds), then the
real engines (the session servers)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server
from tests.http.test_openai_http import USER, make_settings, serve


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    return sum(v for (n, ls), v in values.items()
               if n == name and all((k, w) in ls for k, w in labels.items()))  # fmt: skip


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def test_predict_and_v1_both_count_per_replica(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, engine_replicas=2)
    with serve(settings) as (url, _, _), httpx.Client(base_url=url, timeout=30) as http:
        before = scrape(http)
        assert total(before, "vllm:request_success_total") == 0
        assert http.post("/predict", json={"prompt": ["one two", "three"]}).status_code == 200
        chat = http.post("/v1/chat/completions", json={"messages": USER}).json()
        with http.stream("POST", "/v1/chat/completions",
                         json={"messages": USER, "stream": True}) as streamed:  # fmt: skip
            assert streamed.status_code == 200
            streamed.read()
        after = scrape(http)
    assert total(after, "vllm:request_success_total") == 4  # 2 prompts + 2 chats
    assert total(after, "vllm:e2e_request_latency_seconds_count") == 4
    assert total(after, "vllm:time_to_first_token_seconds_count") == 4
    # The fake engine counts a word as a token: the chat's usage is in the counter.
    assert total(after, "vllm:generation_tokens_total") >= 2 * chat["usage"]["completion_tokens"]
    engines = {dict(ls)["engine"] for (n, ls), v in after.items()
               if n == "vllm:request_success_total" and v}  # fmt: skip
    assert engines == {"0", "1"}  # the list was split over both replicas
    assert total(after, "vllm:num_requests_running") == 0
    assert total(after, "vllm:num_requests_waiting") == 0


@pytest.mark.engine
def test_real_engine_counts_tokens(any_server: Server) -> None:
    with any_server.client() as http:
        before = scrape(http)
        body = http.post("/v1/chat/completions",
                         json={"messages": USER, "max_tokens": 8}).json()  # fmt: skip
        assert http.post("/predict", json={"prompt": "Name a color."}).status_code == 200
        after = scrape(http)
    generated = total(after, "vllm:generation_tokens_total") - total(
        before, "vllm:generation_tokens_total")
    assert generated >= body["usage"]["completion_tokens"] + 1
    prompts = total(after, "vllm:prompt_tokens_total") - total(before, "vllm:prompt_tokens_total")
    assert prompts > body["usage"]["prompt_tokens"]
    assert total(after, "vllm:request_success_total") - total(
        before, "vllm:request_success_total") == 2
