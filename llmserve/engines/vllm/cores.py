"""vLLM engine cores shared by several API processes (API_SERVERS > 1 with ENGINE=vllm).

vLLM splits an engine in two: the engine core (scheduler, model, KV cache; its own process)
and the client (AsyncLLM: tokenizing, detokenizing, output processing; in the API process).
With one API process, that client does the work of every request, and on an H100 it bounded
one engine's concurrent /predict at 0.705x offline even behind 4 HTTP fronts (a profile of the
API process: 32% of its samples in vLLM's client; results/bench/gpu-h100-api-servers-4-*).
`vllm serve --api-server-count N` answers this by giving each of N API processes its own
client of the same engine core; this module does the same for our fronts:

- SharedCores (in the supervisor, `llmserve serve`): starts ENGINE_REPLICAS engine cores
  with vLLM's own launcher (`launch_core_engines`), one after another (on a GPU each sizes its
  KV cache alone), each listening for API_SERVERS clients on IPC addresses chosen here;
- CoreClient (in each front): the addresses of one core and this front's place among its
  clients; VllmEngine(core=...) builds its AsyncLLM on it.

vLLM's launcher changed between the releases we run (0.26 on the GPU image, 0.32 for CPU):
`_launch` is the one place that knows both.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmserve.settings import Settings


@dataclass(frozen=True)
class CoreClient:
    """One front's connection to one engine core: the addresses its AsyncLLM binds (the core
    connects to them) and its index among the core's client_count clients."""

    input_address: str
    output_address: str
    client_count: int
    client_index: int

    def asdict(self) -> dict[str, Any]:
        return asdict(self)

    def client_addresses(self) -> dict[str, Any]:
        """AsyncLLM's client_addresses argument."""
        return {"input_address": self.input_address, "output_address": self.output_address}


def engine_config(kwargs: dict[str, Any], clients: int, rank: int) -> Any:
    """The VllmConfig of the engine `kwargs` (args.engine_kwargs) describe, for a core with
    `clients` API processes (rank -1: the launcher; else the client's index). The usage
    context of VllmEngine's own AsyncLLM (engine.py says why LLM_CLASS)."""
    from vllm import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext

    args = AsyncEngineArgs(**kwargs)
    args._api_process_count = clients
    args._api_process_rank = rank
    return args.create_engine_config(usage_context=UsageContext.LLM_CLASS)


@contextlib.contextmanager
def _launch(config: Any, addresses: Any) -> Iterator[Any]:
    """vLLM's launch_core_engines for this release; yields the core's process manager and,
    on leaving, waits until the core is ready (vLLM's startup handshake)."""
    from vllm.v1.engine.utils import launch_core_engines
    from vllm.v1.executor import Executor

    # log_stats False: the fronts' clients log none (engine.py says why), so the core need
    # not gather them.
    args: list[Any] = [config, Executor.get_class(config), False, addresses]
    if "num_api_servers" in inspect.signature(launch_core_engines).parameters:  # vLLM 0.26
        args.append(len(addresses.inputs))
    with launch_core_engines(*args) as launched:
        yield launched[0] if isinstance(launched, tuple) else launched.engine_manager


class SharedCores:
    """ENGINE_REPLICAS vLLM engine cores, each with `fronts` clients (module docstring)."""

    def __init__(self, settings: Settings, model_dir: Path, fronts: int) -> None:
        from vllm.utils.network_utils import get_open_zmq_ipc_path

        self.settings = settings
        self.model_dir = model_dir
        self.fronts = fronts
        # [replica][front]: IPC paths are unique files, so nothing races for a port.
        self.clients = [
            [CoreClient(get_open_zmq_ipc_path(), get_open_zmq_ipc_path(), fronts, index)
             for index in range(fronts)]
            for _ in range(settings.engine_replicas)
        ]  # fmt: skip
        self.managers: list[Any] = []

    def attachments(self, front: int) -> list[dict[str, Any]]:
        """What front number `front` attaches to: its CoreClient of each replica's core."""
        return [replica[front].asdict() for replica in self.clients]

    def start(self) -> None:
        """Start the cores one after another, each ready before the next (an exception: the
        core that failed to start; the ones started before it are left to stop())."""
        from vllm.v1.engine.utils import EngineZmqAddresses

        from llmserve.engines.vllm.args import engine_kwargs

        kwargs = engine_kwargs(self.settings, self.model_dir)
        for replica in self.clients:
            addresses = EngineZmqAddresses(
                inputs=[c.input_address for c in replica],
                outputs=[c.output_address for c in replica],
            )
            config = engine_config(kwargs, self.fronts, -1)
            with _launch(config, addresses) as manager:
                self.managers.append(manager)

    def dead(self) -> str | None:
        """A line naming a core process that ended, or None while all run."""
        for manager in self.managers:
            for name, code in manager.finished_procs().items():
                return f"engine core {name} ended with {code}"
        return None

    def stop(self) -> None:
        for manager in self.managers:
            try:
                manager.shutdown()
            except Exception as exc:  # the others still get their stop
                print(f"warning: stopping an engine core: {exc}", file=sys.stderr)
        self.managers = []
