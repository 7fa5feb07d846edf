"""The run's record: one JSON file rewritten atomically as each figure arrives, and its
markdown tables (rendered from the JSON alone, so an interrupted run's record renders too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmserve.bench.config import REFERENCE, TARGETS, base_row, label, row_replicas
from llmserve.bench.roofline import record_latency_floors, record_limits
from llmserve.harness.stats import ratio
from llmserve.records import write_atomic

LATENCY_LABELS = {"predict": "/predict", "vllm-offline": "vLLM offline LLM.generate",
                  "vllm-serve": "vllm serve", "transformers": "transformers generate"}


# What must agree for a resumed run to add to a record: the figures must stay comparable.
RESUME_KEYS = ("engine_kwargs", "sampling", "workload", "cpu_env")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def resume_mismatch(existing: dict[str, Any], header: dict[str, Any]) -> str | None:
    """The first setting that differs between a record and a new run's header (None: same)."""
    for key in RESUME_KEYS:
        if existing.get(key) != _plain(header.get(key)):
            return key
    return None


class Record:
    """The JSON record of one run, saved after every change. Given the data of an earlier
    invocation (--resume), it keeps its figures and notes the new invocation."""

    def __init__(self, path: Path, header: dict[str, Any],
                 existing: dict[str, Any] | None = None) -> None:
        self.path = path
        if existing is None:
            self.data: dict[str, Any] = {
                **header, "systems": {}, "throughput": {}, "latency": {}, "resumed": []}
        else:
            self.data = existing
            self.data.setdefault("resumed", []).append(
                {key: header.get(key) for key in ("started_at", "command", "git", "packages")})
            systems = set(existing["config"]["systems"]) | set(header["config"]["systems"])
            order = [*existing["config"]["systems"], *header["config"]["systems"]]
            self.data["config"]["systems"] = sorted(systems, key=order.index)
            # Replica counts swept by any invocation (the scale line shows them all).
            scale, new_scale = self.data.get("scale"), header.get("scale")
            if scale is not None and new_scale is not None:
                sweeps = {*scale.get("replica_sweep", []), *new_scale.get("replica_sweep", [])}
                scale["replica_sweep"] = sorted(sweeps)
        self.data["status"] = "running"
        self.save()

    def reset(self, name: str, rows: tuple[str, ...]) -> None:
        """Forget a system's earlier figures and facts before it is measured again."""
        self.data["systems"].pop(name, None)
        self.data["latency"].pop(name, None)
        for row in rows:
            self.data["throughput"].pop(row, None)
        self.save()

    def complete(self, name: str, rows: tuple[str, ...], phases: tuple[str, ...]) -> bool:
        """Whether a system already has all its figures and no error."""
        facts = self.data["systems"].get(name)
        if not facts or facts.get("error"):
            return False
        if "throughput" in phases and any(r not in self.data["throughput"] for r in rows):
            return False
        return "latency" not in phases or name in self.data["latency"]

    def system(self, name: str, **facts: Any) -> None:
        self.data["systems"].setdefault(name, {}).update(facts)
        self.save()

    def throughput(self, row: str, summary: dict[str, Any], system: str | None = None) -> None:
        """`system`: the name of the system measured (its facts give the roofline's weights)."""
        self.data["throughput"][row] = {"label": label(row), "system": system, **summary}
        self.save()

    def latency(self, name: str, summary: dict[str, Any]) -> None:
        text = LATENCY_LABELS.get(base_row(name), name)
        if (replicas := row_replicas(name)) is not None:
            text += f", {replicas} engine replicas"
        self.data["latency"][name] = {"label": text, **summary}
        self.save()

    def finish(self, **facts: Any) -> None:
        failed = any(s.get("error") for s in self.data["systems"].values())
        self.data.update(status="failed" if failed else "complete", **facts)
        self.save()

    def save(self) -> None:
        self.data["ratios"] = ratios(self.data)
        self.data["targets"] = targets(self.data)
        if self.data.get("roofline"):
            self.data["roofline_limits"] = {"throughput": record_limits(self.data),
                                            "latency": record_latency_floors(self.data)}
        write_atomic(self.path, json.dumps(self.data, indent=1, default=str) + "\n")


def _median_tps(data: dict[str, Any], row: str) -> float | None:
    entry = data["throughput"].get(row)
    return entry["tokens_per_s"]["median"] if entry else None


def ratios(data: dict[str, Any]) -> dict[str, float | None]:
    """Each row's median tokens/s over the reference's (vllm-offline)."""
    reference = _median_tps(data, REFERENCE)
    return {row: ratio(_median_tps(data, row), reference) for row in data["throughput"]}


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for the rows this run has (figures only: nothing fails on them)."""
    found = []
    for row, versus, minimum in TARGETS:
        value = ratio(_median_tps(data, row), _median_tps(data, versus))
        if value is not None:
            found.append({"system": row, "versus": versus, "min": minimum, "ratio": value,
                          "met": value >= minimum})
    return found


# --- markdown --------------------------------------------------------------------------


def _spread(entry: dict[str, Any], digits: int = 1) -> str:
    return f"{entry['median']:.{digits}f} [{entry['min']:.{digits}f}–{entry['max']:.{digits}f}]"


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# Benchmark {data.get('started_at', '')}", ""]
    lines += _context(data)
    lines += _throughput_table(data)
    lines += _latency_table(data)
    lines += _targets_table(data)
    errors = {n: s["error"] for n, s in data["systems"].items() if s.get("error")}
    if errors:
        lines += ["## Errors", ""] + [f"- {name}: {error}" for name, error in errors.items()]
        lines.append("")
    return "\n".join(lines)


def _context(data: dict[str, Any]) -> list[str]:
    hw = data.get("hardware", {})
    gpus = ", ".join(hw.get("gpus") or []) or "none"
    versions = ", ".join(f"{k} {v}" for k, v in data.get("packages", {}).items())
    kwargs = data.get("engine_kwargs", {})
    git = data.get("git", {})
    return [
        f"- hardware: {hw.get('cpu')} × {hw.get('usable_cpus')} CPUs, "
        f"{hw.get('memory_gib')} GiB; GPUs: {gpus}",
        f"- packages: {versions}",
        f"- engine: dtype {kwargs.get('dtype')}, max_num_seqs {kwargs.get('max_num_seqs')}, "
        f"enforce_eager {kwargs.get('enforce_eager')}, prefix caching "
        f"{kwargs.get('enable_prefix_caching')}, gpu_memory_utilization "
        f"{kwargs.get('gpu_memory_utilization')}",
        *_scale_line(data),
        *_roofline_line(data),
        f"- CPU env added: {data.get('cpu_env') or 'none'}",
        f"- git: {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}",
        "",
    ]


def _roofline_line(data: dict[str, Any]) -> list[str]:
    machine = data.get("roofline")
    if not machine:
        return []
    gemm = ", ".join(f"{k} {v:.0f}" for k, v in machine["gemm_gflop_s"].items())
    return [f"- roofline: memory {machine['triad_gb_s']:.1f} GB/s (triad), GEMM GFLOP/s {gemm}; "
            f"{(data.get('model_params') or 0) / 1e6:.0f} M parameters"]


def _scale_line(data: dict[str, Any]) -> list[str]:
    scale = data.get("scale")
    if not scale:  # a record from before the scale facts
        return []
    sweep = scale.get("replica_sweep") or []
    replicas = ("/predict swept over " + ", ".join(map(str, sweep)) if sweep
                else str(scale.get("engine_replicas")))
    return [
        f"- scale: {scale.get('gpus')} GPUs; engine replicas {replicas}; tensor parallel "
        f"{scale.get('tensor_parallel_size')}, pipeline parallel "
        f"{scale.get('pipeline_parallel_size')}, data parallel "
        f"{scale.get('data_parallel_size')}",
    ]


def _throughput_table(data: dict[str, Any]) -> list[str]:
    if not data["throughput"]:
        return []
    work = data.get("workload", {}).get("throughput", {})
    limits = data.get("roofline_limits", {}).get("throughput", {})
    rows = []
    for row, entry in data["throughput"].items():
        rows.append([
            f"{row} ({entry['label']})",
            _spread(entry["tokens_per_s"]),
            _spread(entry["seconds"], 2),
            f"{entry['output_tokens']['median']:.0f}",
            _num(data["ratios"].get(row), 3),
            _spread(entry["cpu_ms_per_token"], 2) if entry.get("cpu_ms_per_token") else "–",
            str(entry.get("failed", 0)),
            *([_fraction(limits.get(row))] if limits else []),
        ])
    title = (
        f"## Throughput: {work.get('num_prompts')} prompts ({work.get('source')}, "
        f"{work.get('input_len') or '~' + str(work.get('mean_prompt_tokens'))} in, "
        f"≤{work.get('output_len')} out, ignore_eos {work.get('ignore_eos')}), "
        f"C={work.get('concurrency')}; median [min–max] of {work.get('repeats')} repeats"
    )
    header = ["system", "output tok/s", "seconds", "output tokens", f"× {REFERENCE}",
              "engine CPU ms/token", "failed", *(["× roofline (binds)"] if limits else [])]
    return [title, "", *_table(header, rows), ""]


def _fraction(limit: dict[str, Any] | None) -> str:
    if not limit:
        return "–"
    return f"{limit['fraction']:.2f} of {limit['tokens_per_s']:.0f} ({limit['binds']})"


def _latency_table(data: dict[str, Any]) -> list[str]:
    if not data["latency"]:
        return []
    work = data.get("workload", {}).get("latency", {})
    floors = data.get("roofline_limits", {}).get("latency", {})
    rows = []
    for name, entry in data["latency"].items():
        facts = data["systems"].get(name, {})
        floor = floors.get(name)
        rows.append([
            f"{name} ({entry['label']})",
            _spread(entry["ttft_ms"]),
            _spread(entry["tpot_ms"], 2),
            _num(entry["e2e_ms"]["p50"]),
            _num(entry["e2e_ms"]["p99"]),
            _num(facts.get("weights_mb")),
            _num(facts.get("peak_rss_mb")),
            _num(facts.get("peak_gpu_mb")),
            *([_floors(floor)] if floors else []),
        ])
    title = (
        f"## Latency: batch {work.get('batch_size')}, {work.get('input_len')} in, "
        f"{work.get('output_len')} out; median [min–max] of {work.get('iterations')} iterations"
    )
    header = ["system", "TTFT ms", "TPOT ms", "e2e p50 ms", "e2e p99 ms", "weights MB",
              "peak RSS MB", "peak GPU MB",
              *(["roofline: TTFT, TPOT floor ms (× floor)"] if floors else [])]
    return [title, "", *_table(header, rows), ""]


def _floors(floor: dict[str, float] | None) -> str:
    if not floor:
        return "–"
    return (f"{floor['ttft_ms']:.1f} ({floor['ttft_fraction']:.2f}), "
            f"{floor['tpot_ms']:.2f} ({floor['tpot_fraction']:.2f})")


def _targets_table(data: dict[str, Any]) -> list[str]:
    if not data["targets"]:
        return []
    rows = [
        [f"{t['system']} / {t['versus']}", f"≥ {t['min']:.2f}", f"{t['ratio']:.3f}",
         "met" if t["met"] else "MISSED"]
        for t in data["targets"]
    ]
    return ["## Targets", "", *_table(["ratio", "target", "measured", ""], rows), ""]
