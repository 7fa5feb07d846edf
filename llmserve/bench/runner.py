"""One benchmark run: build the shared workload, then start, measure and stop each system in
turn (never two engines at once), saving the record after every figure."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from llmserve.bench.config import BenchConfig, base_row
from llmserve.bench.memory import MB, PeakMemory, tree_cpu_seconds
from llmserve.bench.record import Record, resume_mismatch
from llmserve.bench.stats import (
    LatencyRun,
    ThroughputRun,
    summarize_latency,
    summarize_throughput,
)
from llmserve.bench.systems import (
    Context,
    Service,
    System,
    instances_for,
    offline_batched_tokens,
    systems_for,
)
from llmserve.bench.workload import Batch, PromptMaker, data_questions, data_slice
from llmserve.errors import LlmserveError
from llmserve.harness.launch import settings_env

# Environment variables worth recording: they change how the engines run.
RECORDED_ENV_PREFIXES = ("VLLM_", "OMP_", "KMP_", "LD_PRELOAD", "CUDA_VISIBLE_DEVICES",
                         "TORCH", "MALLOC", "HF_HUB_OFFLINE")


@dataclass
class Plan:
    """The batches: per throughput lane (a server's second row gets its own prompts, so the
    prefix cache never serves a prompt it saw before), warm-ups then repeats."""

    throughput: list[list[Batch]]  # [lane][run]
    latency: list[tuple[Batch, Batch]]  # [iteration] -> (full output, first token)
    warmup: int

    def measured(self, lane: int) -> list[Batch]:
        return self.throughput[lane][self.warmup :]

    def warmups(self, lane: int) -> list[Batch]:
        return self.throughput[lane][: self.warmup]


def make_plan(config: BenchConfig, maker: PromptMaker, lanes: int) -> Plan:
    runs = config.warmup + config.repeats
    questions = data_questions(config.data) if config.source == "data" else []
    throughput = []
    for lane in range(lanes if "throughput" in config.phases else 0):
        batches = []
        for index in range(runs):
            if config.source == "data":
                prompts = data_slice(questions, config.num_prompts, lane * runs + index)
                batches.append(maker.batch(prompts))
            else:
                batches.append(maker.synthetic(
                    config.num_prompts, config.input_len, seed=f"throughput:{lane}:{index}"))
        throughput.append(batches)
    # Latency: one warm-up iteration, then the measured ones.
    latency = [
        (maker.synthetic(config.batch_size, config.input_len, seed=f"latency:{i}"),
         maker.synthetic(config.batch_size, config.input_len, seed=f"first-token:{i}"))
        for i in range(1 + config.latency_iters)
    ] if "latency" in config.phases else []
    return Plan(throughput=throughput, latency=latency, warmup=config.warmup)


def child_environment(config: BenchConfig, overrides: dict[str, Any],
                      cpu_vars: dict[str, str], withheld: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment of every process the benchmark starts: the user's, the CPU defaults
    the service would get from run_model.sh, and the run's settings.

    `withheld` are launch variables the run goes without (--no-cpu-env): they are set empty,
    because `llmserve serve` adds its engine's launch environment for every variable that is
    not set, and the service must run as the other systems do.
    """
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # local checkpoints only; no hub look-ups
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.update(cpu_vars)
    env.update({name: "" for name in withheld})
    env.update(config.extra_env)
    env.update(settings_env(overrides))
    return env


def selected_rows(system: System, systems: tuple[str, ...]) -> tuple[str, ...]:
    """The system's rows that the run asked for (a swept row counts as its base row)."""
    return tuple(r for r in system.rows if base_row(r) in systems)


def scale(settings: Any, config: BenchConfig, hw: dict[str, Any]) -> dict[str, Any]:
    """How many engines and GPUs the run used: the record's answer to "on what scale"."""
    return {
        "gpus": len(hw.get("gpus") or []),
        "engine_replicas": settings.engine_replicas,
        "replica_sweep": list(config.replicas),
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
    }


class Runner:
    def __init__(self, config: BenchConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.engine_replicas = 1

    def say(self, message: str) -> None:
        self.console.print(message, highlight=False)

    async def run(self) -> Record:
        from transformers import AutoTokenizer

        from llmserve.engines import launch_env
        from llmserve.engines.base import Sampling
        from llmserve.engines.render import PromptRenderer
        from llmserve.engines.vllm.args import engine_kwargs, sampling_kwargs
        from llmserve.harness.metadata import git_state, hardware, now_iso, package_versions
        from llmserve.model import prepared_model_dir
        from llmserve.settings import load_settings

        config = self.config
        overrides = config.settings_overrides()
        settings = load_settings(**overrides)
        if settings.max_num_batched_tokens is None:
            pinned = offline_batched_tokens(settings.tensor_parallel_size)
            if pinned is not None:
                overrides["max_num_batched_tokens"] = pinned
                settings = load_settings(**overrides)
        model_dir = prepared_model_dir(settings)
        self.engine_replicas = settings.engine_replicas  # the service's, unless swept
        # The engine's launch environment (vLLM on CPU: llmserve.engines.vllm.cpu_env's
        # defaults), the variables not already set, for every system alike.
        launch_vars = launch_env(settings)
        cpu_vars = launch_vars if config.cpu_env else {}
        withheld = () if config.cpu_env else tuple(launch_vars)
        env = child_environment(config, overrides, cpu_vars, withheld)
        renderer = PromptRenderer(
            AutoTokenizer.from_pretrained(model_dir), settings.system_prompt, settings.raw_prompt
        )
        maker = PromptMaker(renderer, settings.max_model_len, settings.max_new_tokens)
        classes = systems_for(config.systems)
        lanes = max(len([r for r in cls.rows if r in config.systems]) for cls in classes)
        self.say(f"building prompts ({config.source}) with {model_dir.name}'s tokenizer")
        plan = make_plan(config, maker, lanes)
        kwargs = engine_kwargs(settings, model_dir)
        # Enough users to fill the engine's batch (vLLM's own default where unset: 1024).
        concurrency = config.concurrency or min(
            config.num_prompts, kwargs.get("max_num_seqs", 1024)
        )
        context = Context(
            model_dir=model_dir,
            engine_kwargs=kwargs,
            sampling=sampling_kwargs(Sampling.from_settings(settings)),
            dtype=settings.dtype,
            env=env,
            run_dir=config.out,
            concurrency=concurrency,
            hf_batch_size=config.hf_batch_size or concurrency,
            start_timeout=config.start_timeout,
            serve_input=config.serve_input,
        )
        first = plan.throughput[0][0] if plan.throughput else None
        hw = hardware()
        header = {
            "kind": "llmserve-bench",
            "started_at": now_iso(),
            "command": sys.argv,
            "config": {k: str(v) if isinstance(v, Path) else v
                       for k, v in asdict(config).items()},
            "git": git_state(),
            "hardware": hw,
            **self.roofline(hw, model_dir),
            "scale": scale(settings, config, hw),
            "packages": package_versions(),
            "settings": settings.public(),
            "engine_kwargs": kwargs,
            "sampling": context.sampling,
            "cpu_env": cpu_vars,
            "env": {k: v for k, v in sorted(env.items()) if k.startswith(RECORDED_ENV_PREFIXES)},
            "workload": {
                "throughput": {
                    "source": config.source,
                    "num_prompts": config.num_prompts,
                    "input_len": config.input_len if config.source == "synthetic" else None,
                    "mean_prompt_tokens": first.prompt_tokens / len(first) if first else None,
                    "output_len": config.output_len,
                    "ignore_eos": config.ignore_eos,
                    "concurrency": concurrency,
                    "serve_input": config.serve_input,
                    "hf_batch_size": context.hf_batch_size,
                    "repeats": config.repeats,
                    "warmup": config.warmup,
                },
                "latency": {
                    "batch_size": config.batch_size,
                    "input_len": config.input_len,
                    "output_len": config.output_len,
                    "iterations": config.latency_iters,
                    "warmup": 1,
                },
            },
        }
        record = Record(config.out / "record.json", header, self.existing(header))
        self.say(f"record: {record.path}")
        for system in instances_for(config.systems, context, config.replicas):
            rows = selected_rows(system, config.systems)
            if config.resume and record.complete(system.name, rows, config.phases):
                self.say(f"{system.name}: already measured in this record; skipped")
                continue
            record.reset(system.name, rows)
            await self.measure(system, plan, record)
        record.finish(finished_at=now_iso())
        return record

    def roofline(self, hw: dict[str, Any], model_dir: Path) -> dict[str, Any]:
        """On a CPU (no GPUs), the machine's limits and the model's parameter count, measured
        before any engine starts (llmserve.bench.roofline); on a GPU, nothing."""
        from llmserve.bench.memory import checkpoint_params
        from llmserve.bench.roofline import measure_machine

        if hw.get("gpus"):
            return {}
        self.say("measuring the CPU's memory bandwidth and GEMM rate (roofline)")
        return {"roofline": measure_machine(hw.get("cpu_flags") or []),
                "model_params": checkpoint_params(model_dir)}

    def existing(self, header: dict[str, Any]) -> dict[str, Any] | None:
        """With --resume, the record already in --out (None when there is none yet)."""
        path = self.config.out / "record.json"
        if not self.config.resume or not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        mismatch = resume_mismatch(data, header)
        if mismatch:
            raise LlmserveError(f"--resume: this run's {mismatch} differs from {path}'s; "
                             "use the same flags and environment, or another --out")
        return data

    async def measure(self, system: System, plan: Plan, record: Record) -> bool:
        """Start, measure and stop one system; a failure is recorded, not raised, so that the
        other systems still run. Returns whether it succeeded."""
        config = self.config
        record.system(system.name, log=str(system.log_path))
        if isinstance(system, Service):
            record.system(system.name, engine_replicas=system.replicas or self.engine_replicas)
        self.say(f"[bold]{system.name}[/bold]: starting")
        with PeakMemory(pid_of=lambda: system.pid) as memory:
            try:
                async with system:
                    record.system(system.name, start_seconds=system.start_seconds)
                    self.say(f"{system.name}: ready in {system.start_seconds:.1f} s")
                    weights = await system.weight_bytes()
                    record.system(system.name, weights_mb=weights / MB if weights else None,
                                  batch_limit=await system.batch_limit())
                    if "throughput" in config.phases:
                        rows = selected_rows(system, config.systems)
                        for lane, row in enumerate(rows):
                            await self.throughput(system, row, lane, plan, record)
                    if "latency" in config.phases:
                        await self.latency(system, plan, record)
            except Exception as error:  # recorded with the log's place; the run goes on
                message = f"{type(error).__name__}: {error}"
                record.system(system.name, error=message)
                self.say(f"[red]{system.name} failed[/red]: {message}")
                return False
            finally:
                record.system(system.name, **memory.to_json())
        self.say(f"{system.name}: stopped")
        return True

    async def throughput(self, system: System, row: str, lane: int, plan: Plan,
                         record: Record) -> None:
        for batch in plan.warmups(lane):
            await system.throughput(row, batch)
        runs: list[ThroughputRun] = []
        for index, batch in enumerate(plan.measured(lane), 1):
            cpu_before = tree_cpu_seconds(system.pid)
            measured = await system.throughput(row, batch)
            run = replace(measured, cpu_seconds=tree_cpu_seconds(system.pid) - cpu_before)
            runs.append(run)
            self.say(f"{row}: run {index}/{len(plan.measured(lane))}: "
                     f"{run.tokens_per_s:.1f} tok/s ({run.output_tokens} tokens, "
                     f"{run.seconds:.2f} s)")
        record.throughput(row, summarize_throughput(runs), system.name)

    async def latency(self, system: System, plan: Plan, record: Record) -> None:
        warm, *measured = plan.latency
        await system.latency(*warm)
        runs: list[LatencyRun] = [await system.latency(full, first) for full, first in measured]
        summary = summarize_latency(runs)
        record.latency(system.name, summary)
        self.say(f"{system.name}: latency TTFT {summary['ttft_ms']['median']:.1f} ms, "
                 f"TPOT {summary['tpot_ms']['median']:.2f} ms, "
                 f"e2e p50 {summary['e2e_ms']['p50']:.0f} ms")
