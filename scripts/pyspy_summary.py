"""Where `llmserve serve`'s processes spent their samples, from py-spy's raw stacks
(scripts/gpu_profile.sh): busy samples per process (fronts, engine cores), the package of each
sample's innermost frame, and the engine core's share in the parts of vLLM's step. JSON on
stdout.

    python scripts/pyspy_summary.py OUT/stacks-4.txt [more stacks files ...]
"""

from __future__ import annotations

import collections
import json
import re
import sys
from pathlib import Path
from typing import Any

# Parts of vLLM's engine-core step (vLLM 0.26.0 names), as shares of the core's busy samples.
CORE_PARTS = ("EngineCore.step_with_batch_queue", "Scheduler.schedule",
              "GPUModelRunner.execute_model", "LlamaForCausalLM.forward",
              "CUDAGraphWrapper.__call__", "Scheduler.update_from_output",
              "GPUModelRunner.sample_tokens", "EngineCoreProc._process_input_queue")  # fmt: skip


def kind_of(process: str) -> str:
    if "EngineCore" in process:
        return "engine core"
    return "front" if "--front-of" in process else "supervisor"


def summarize(path: Path) -> dict[str, Any]:
    by_process: collections.Counter[str] = collections.Counter()
    leaves: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    core: collections.Counter[str] = collections.Counter()
    core_total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        parts = stack.split(";")
        process = [p for p in parts if p.startswith("process ")][-1]
        pid = re.search(r"process (\d+)", process)
        kind = kind_of(process)
        by_process[f"{kind} {pid.group(1) if pid else '?'}"] += n
        frames = [p for p in parts if not p.startswith("process ")]
        where = re.search(r"\(([^:]*)", frames[-1]) if frames else None
        leaves[kind][(where.group(1) if where else "?").split("/")[0]] += n
        if kind == "engine core":
            core_total += n
            for name in {frame.split(" (")[0] for frame in frames} & set(CORE_PARTS):
                core[name] += n
    return {
        "samples_by_process": dict(sorted(by_process.items())),
        "leaf_frames_by_package": {k: dict(c.most_common(12)) for k, c in leaves.items()},
        "engine_core_inclusive_share": {
            name: round(core[name] / core_total, 3) for name in CORE_PARTS if core[name]
        },
    }


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps({path: summarize(Path(path)) for path in sys.argv[1:]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
