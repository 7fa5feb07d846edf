"""The vLLM engine behind /predict: engine arguments from settings, prompt rendering, batching.

`engine_kwargs()` is shared with the benchmark so that offline `LLM.generate`, `vllm serve`
and this service run with the same engine settings.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmserve.settings import Settings

CPU_DEFAULT_MEMORY_UTILIZATION = 0.25  # of NUMA node 0; vLLM's 0.9 does not fit beside the OS
GPU_DEFAULT_MEMORY_UTILIZATION = 0.9
TOKENIZE_CHUNK = 64  # prompts of a list templated and tokenized per step (see generate)


class PromptTooLong(ValueError):
    """A prompt leaves no room for output within MAX_MODEL_LEN."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(
            f"prompt[{index}] has {tokens} tokens after templating; "
            f"the limit is {limit - 1} (MAX_MODEL_LEN={limit})"
        )


def device_type() -> str:
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def engine_kwargs(settings: Settings, model_dir: Path) -> dict[str, Any]:
    """Keyword arguments for vllm.LLM / AsyncEngineArgs, identical for every system we run."""
    utilization = settings.gpu_memory_utilization
    if utilization is None:
        utilization = (
            CPU_DEFAULT_MEMORY_UTILIZATION
            if device_type() == "cpu"
            else GPU_DEFAULT_MEMORY_UTILIZATION
        )
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "dtype": settings.dtype,
        "max_model_len": settings.max_model_len,
        "gpu_memory_utilization": utilization,
        "max_num_seqs": settings.max_num_seqs,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "enforce_eager": settings.enforce_eager,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "quantization": settings.quantization,
        "load_format": settings.load_format,
        "kv_cache_dtype": settings.kv_cache_dtype,
        "speculative_config": speculative_config(settings),
    }
    if settings.max_num_batched_tokens is not None:
        kwargs["max_num_batched_tokens"] = settings.max_num_batched_tokens
    if settings.seed is not None:
        kwargs["seed"] = settings.seed
    return kwargs


def speculative_config(settings: Settings) -> dict[str, Any] | None:
    if settings.speculative_method == "ngram":
        return {
            "method": "ngram",
            "num_speculative_tokens": settings.num_speculative_tokens,
            "prompt_lookup_min": settings.ngram_prompt_lookup_min,
            "prompt_lookup_max": settings.ngram_prompt_lookup_max,
        }
    if settings.speculative_method == "draft":
        return {
            "method": "draft_model",
            "model": str(settings.speculative_draft_model),
            "num_speculative_tokens": settings.num_speculative_tokens,
        }
    return None


def sampling_kwargs(settings: Settings) -> dict[str, Any]:
    """SamplingParams keywords (without max_tokens, which depends on the prompt's length)."""
    return {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "top_k": settings.top_k,
        "repetition_penalty": settings.repetition_penalty,
        "frequency_penalty": settings.frequency_penalty,
        "stop": list(settings.stop_strings) or None,
        "ignore_eos": settings.ignore_eos,
        "seed": settings.seed,
    }


class PromptRenderer:
    """Turns user prompts into token ids: chat template (with SYSTEM_PROMPT) unless RAW_PROMPT."""

    def __init__(self, tokenizer: Any, system_prompt: str | None, raw: bool) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.raw = raw or not getattr(tokenizer, "chat_template", None)

    def text(self, prompt: str) -> str:
        if self.raw:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return str(
            self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        )

    def token_ids(self, prompts: list[str]) -> list[list[int]]:
        texts = [self.text(p) for p in prompts]
        # The template already holds the special tokens; a raw prompt gets the tokenizer's own.
        encoded = self.tokenizer(texts, add_special_tokens=self.raw)
        return [list(ids) for ids in encoded["input_ids"]]


@dataclass
class Generation:
    texts: list[str]
    output_tokens: int
    engine_seconds: float
    ttft_seconds: float | None  # first token of the first prompt to get one, engine-side


class Engine:
    """One vLLM AsyncLLM: continuous batching, so concurrent calls are never serialized."""

    def __init__(self, settings: Settings, model_dir: Path) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        self.settings = settings
        self.model_dir = model_dir
        self.kwargs = engine_kwargs(settings, model_dir)
        # vLLM sizes unset batching limits by usage context; the default engine context gets
        # the smallest (max_num_batched_tokens 2048 where offline LLM gets 16384 on an H100),
        # which cost /predict 30% of offline throughput. LLM_CLASS gives offline's defaults.
        self.llm = AsyncLLM.from_engine_args(
            AsyncEngineArgs(**self.kwargs), usage_context=UsageContext.LLM_CLASS
        )
        self.renderer = PromptRenderer(
            AutoTokenizer.from_pretrained(model_dir), settings.system_prompt, settings.raw_prompt
        )
        self.max_model_len = int(self.llm.model_config.max_model_len)

    @property
    def dead(self) -> bool:
        return bool(self.llm.errored)

    async def generate(self, prompts: list[str]) -> Generation:
        """All prompts enter the engine together and come back in order."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        base = sampling_kwargs(self.settings)
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
                    if len(prompt_ids) >= self.max_model_len:
                        raise PromptTooLong(first + offset, len(prompt_ids), self.max_model_len)
                if first == 0:
                    start = time.perf_counter()
                tasks += [
                    asyncio.create_task(
                        self._one(
                            prompt_ids,
                            SamplingParams(
                                **base,
                                max_tokens=min(
                                    self.settings.max_new_tokens,
                                    self.max_model_len - len(prompt_ids),
                                ),
                                output_kind=RequestOutputKind.FINAL_ONLY,
                            ),
                        )
                    )
                    for prompt_ids in ids
                ]
            outputs = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # a later prompt was too long, or we were cancelled: abort
                task.cancel()  # what entered the engine (vLLM aborts a cancelled request)
            raise
        seconds = time.perf_counter() - start
        latencies = [o.metrics.first_token_latency for o in outputs if o.metrics is not None]
        return Generation(
            texts=[o.outputs[0].text for o in outputs],
            output_tokens=sum(len(o.outputs[0].token_ids) for o in outputs),
            engine_seconds=seconds,
            ttft_seconds=min(latencies) if latencies else None,
        )

    async def _one(self, prompt_ids: list[int], params: Any) -> Any:
        final = None
        async for output in self.llm.generate(
            {"prompt_token_ids": prompt_ids}, params, request_id=uuid.uuid4().hex
        ):
            final = output
        return final

    def facts(self) -> dict[str, Any]:
        """Engine facts for /info, read from the engine's resolved config."""
        import vllm

        config = self.llm.vllm_config
        spec = config.speculative_config
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
            "device": device_type(),
            "chat_template": not self.renderer.raw,
        }

    def shutdown(self) -> None:
        self.llm.shutdown()
