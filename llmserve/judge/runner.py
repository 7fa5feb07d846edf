"""One judge run: send the items, score them as they arrive, append details, summarize.

The run is resumable: each scored item is appended and flushed to details.jsonl before the
next is handled, --resume skips the ids already there, and the summary is computed from
that file, so it holds every selected item exactly once however often the run was cut.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import jieba
from tqdm import tqdm

from llmserve.dataset import Item, has_splits, load_items, select
from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.client import Info, Prediction, ServiceClient
from llmserve.harness.metadata import git_state, hardware, now_iso
from llmserve.judge.details import read_details
from llmserve.judge.gates import Gate, TpsBasis, check_gates, gates_json
from llmserve.judge.scoring import DEFAULT_SCORER, compat_blind, score_all
from llmserve.judge.stats import summarize
from llmserve.judge.tokens import Counter, find_tokenizer_dir, load_counter
from llmserve.records import JsonlWriter, Record, append_jsonl, write_json

Api = Literal["predict", "chat"]
APIS: tuple[Api, ...] = ("predict", "chat")
DETAILS = "details.jsonl"
SUMMARY = "summary.json"
SESSIONS = "sessions.jsonl"

CAVEATS = [
    "compat is the reference scorer: its tokenizer keeps only [a-z0-9] runs, so Chinese "
    "words count for nothing (all-Chinese references score 0); cjk scores the jieba words.",
    "Output tokens are the response text re-encoded with the served model's tokenizer; the "
    "engine's own count (X-Output-Tokens) is beside it and may differ slightly.",
    "Wall tokens/s includes HTTP, JSON and the judge's own scoring; engine tokens/s uses the "
    "server's X-Engine-Seconds, placed as [t_end - engine_s, t_end] and merged as a union "
    "over concurrent requests.",
    "With --api chat, each question is one user message to /v1/chat/completions; the engine "
    "count is usage.completion_tokens, and engine seconds are known only if the server sends "
    "X-Engine-Seconds (else tokens/s is wall).",
    "When the judge and the server share a machine, the judge's CPU use competes with the "
    "engine; in batch mode a latency is the whole batch's.",
]


@dataclass
class RunConfig:
    url: str
    data: Path
    out: Path
    split: str = "test"
    limit: int | None = None
    batch: bool = False
    batch_size: int | None = None  # with batch: prompts per request; None: server's maximum
    concurrency: int = 1
    timeout: float = 600.0
    retries: int = 5
    wait: float = 30.0  # seconds to wait for a server that does not answer at all
    wait_loading: float = 900.0  # seconds to wait for a server answering 503 (loading)
    resume: bool = False
    tokenizer: Path | None = None
    scorer: str = DEFAULT_SCORER
    min_score: float | None = None
    min_tps: float | None = None
    tps_basis: TpsBasis = "auto"
    progress: bool = True
    api: Api = "predict"  # chat: POST /v1/chat/completions, one user message per question
    model: str | None = None  # chat: the model name sent (None: the first of GET /v1/models)
    api_key: str | None = field(default=None, repr=False)  # chat: bearer token for /v1/*

    @property
    def mode(self) -> str:
        if self.batch:
            return "batch" if self.concurrency == 1 else "batch+concurrent"
        return "sequential" if self.concurrency == 1 else "concurrent"


@dataclass
class RunResult:
    summary: dict[str, Any]
    gates: list[Gate] = field(default_factory=list)
    out: Path = Path()

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def exit_code(self) -> int:
        return int(ExitCode.OK if self.passed else ExitCode.GATE_FAILED)


OnItem = Callable[[Record], None]


def prepare_details(config: RunConfig, items: list[Item]) -> list[Record]:
    """The records already in --out, checked against the selection; refuses to mix runs."""
    path = config.out / DETAILS
    done = read_details(path, repair=config.resume)
    if done and not config.resume:
        raise LlmserveError(
            f"{path} already holds {len(done)} scored items: pass --resume to continue that "
            "run, or choose another --out"
        )
    selected = {item.id for item in items}
    stray = [r["id"] for r in done if r["id"] not in selected]
    if stray:
        raise LlmserveError(
            f"{path} holds items outside this selection (e.g. {stray[0]!r}): resume with the "
            "same --data and --split as the run it continues"
        )
    return done


def chunked(items: list[Item], size: int) -> list[list[Item]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Runner:
    def __init__(self, config: RunConfig, on_item: OnItem | None = None) -> None:
        self.config = config
        self.on_item = on_item

    def run(self) -> RunResult:
        return asyncio.run(self._run())

    async def _run(self) -> RunResult:
        config = self.config
        all_items = load_items(config.data)
        items = select(all_items, config.split, config.limit)
        done = prepare_details(config, items)
        if config.api == "chat" and config.batch:
            raise LlmserveError("--batch sends lists to /predict: it needs --api predict")
        client = ServiceClient(config.url, config.timeout, config.retries, config.concurrency,
                               tool="judge", status_hints={413: "lower --batch-size"},
                               api_key=config.api_key if config.api == "chat" else None)
        try:
            health = await client.wait_healthy(config.wait, config.wait_loading)
            info = await client.info()
            info_data = info.data if info else None
            if config.api == "chat":
                await self._chat_model(client)  # fills config.model when it was not given
            tokenizer_dir, tokenizer_source = find_tokenizer_dir(config.tokenizer, info_data)
            count = load_counter(tokenizer_dir)
            jieba.initialize()  # load its dictionary now, not inside the timed run
            session = 1 + max((r["session"] for r in done), default=0)
            batch_size = self._batch_size(info) if config.batch else 1
            self._log_session(session, batch_size, info)
            done_ids = {r["id"] for r in done}
            todo = [item for item in items if item.id not in done_ids]
            if done:
                print(f"resuming {config.out}: {len(done)} done, {len(todo)} to go",
                      file=sys.stderr)
            await self._evaluate(client, chunked(todo, batch_size), count, session, len(items),
                                 len(done))
        finally:
            await client.aclose()
        records = read_details(config.out / DETAILS)
        missing = len(items) - len(records)
        if missing:
            raise LlmserveError(f"{missing} selected items are not in {config.out / DETAILS}")
        results = summarize(records)
        gates = check_gates(
            results, config.scorer, config.min_score, config.min_tps, config.tps_basis
        )
        summary = {
            "complete": True,
            "time": now_iso(),
            "scorer": config.scorer,
            "results": results,
            "gates": gates_json(gates),
            "passed": all(gate.passed for gate in gates),
            "run": {
                **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
                   if k != "api_key"},  # never the key in a results file
                "mode": config.mode,
                "batch_size": batch_size,
                "data_has_splits": has_splits(all_items),
                "tokenizer": str(tokenizer_dir),
                "tokenizer_source": tokenizer_source,
            },
            "server": {"url": config.url, "health": health, "info": info_data},
            "git": git_state(),
            "hardware": hardware(),
            "caveats": CAVEATS,
        }
        write_json(config.out / SUMMARY, summary)
        return RunResult(summary=summary, gates=gates, out=config.out)

    async def _chat_model(self, client: ServiceClient) -> str:
        """The model name for /v1/chat/completions: --model, checked, else the first served."""
        served = await client.models()
        if self.config.model is None:
            self.config.model = served[0]
        elif self.config.model not in served:
            raise LlmserveError(f"--model {self.config.model!r} is not served at "
                                f"{self.config.url} (GET /v1/models: {', '.join(served)})")
        return self.config.model

    def _batch_size(self, info: Info | None) -> int:
        if self.config.batch_size is not None:
            return self.config.batch_size
        limit = info.max_batch_prompts if info else None
        return limit or 1_000_000  # unknown limit: one request for everything

    def _log_session(self, session: int, batch_size: int, info: Info | None) -> None:
        """Which settings each session ran with: a resumed run may mix them, visibly."""
        entry = {
            "session": session,
            "time": now_iso(),
            "mode": self.config.mode,
            "api": self.config.api,
            "model": self.config.model,
            "batch_size": batch_size,
            "concurrency": self.config.concurrency,
            "server_settings": (info.data.get("settings") if info else None),
        }
        append_jsonl(self.config.out / SESSIONS, entry)

    async def _evaluate(
        self,
        client: ServiceClient,
        chunks: list[list[Item]],
        count: Counter,
        session: int,
        total: int,
        already: int,
    ) -> None:
        as_list = self.config.batch
        gate = asyncio.Semaphore(self.config.concurrency)

        async def send(number: int, chunk: list[Item]) -> tuple[int, list[Item], Prediction]:
            async with gate:
                if self.config.api == "chat":  # chunks are single items without --batch
                    (item,) = chunk
                    message = {"role": "user", "content": item.question}
                    return number, chunk, await client.chat([message], self.config.model)
                return number, chunk, await client.predict([i.question for i in chunk], as_list)

        tasks = [asyncio.create_task(send(n, chunk)) for n, chunk in enumerate(chunks, 1)]
        bar = tqdm(total=total, initial=already, unit="item", desc="judge", file=sys.stderr,
                   disable=not self.config.progress, dynamic_ncols=True)
        try:
            with JsonlWriter(self.config.out / DETAILS) as writer:
                for finished in asyncio.as_completed(tasks):
                    number, chunk, prediction = await finished
                    for item, response in zip(chunk, prediction.responses, strict=True):
                        record = self._record(item, response, prediction, count, session, number,
                                              len(chunk))
                        writer.write(record)
                        bar.update(1)
                        if self.on_item is not None:
                            self.on_item(record)
        finally:
            bar.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _record(
        item: Item,
        response: str,
        prediction: Prediction,
        count: Counter,
        session: int,
        request: int,
        request_size: int,
    ) -> Record:
        return {
            "id": item.id,
            "split": item.split,
            "question": item.question,
            "reference": item.reference,
            "prediction": response,
            "scores": score_all(item.reference, response),
            "compat_blind": compat_blind(item.reference),
            "output_tokens": count(response),
            "latency_s": prediction.latency_s,
            "engine_seconds": prediction.engine_seconds,
            "engine_output_tokens": prediction.engine_output_tokens,
            "request": request,
            "request_size": request_size,
            "session": session,
            "t_start": prediction.t_start,
            "t_end": prediction.t_end,
        }


def score_test_split(
    url: str, data: Path, out: Path, limit: int | None, batch_size: int, progress: bool = False
) -> dict[str, Any]:
    """The judge on `data`'s test split, batched (as the scoreboard and the budget sweep run
    it, resuming in `out`): the row fields rouge_cjk, rouge_compat, judge_items and
    judge_output_tokens."""
    config = RunConfig(url=url, data=data, out=out, split="test", limit=limit, batch=True,
                       batch_size=batch_size, resume=True, progress=progress)
    results = Runner(config).run().summary["results"]
    return {
        "rouge_cjk": results["scores"]["cjk"],
        "rouge_compat": results["scores"]["compat"],
        "judge_items": results["items"],
        "judge_output_tokens": results["engine_output_tokens"],
    }
