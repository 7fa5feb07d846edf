"""`llmserve pad-heads OUT --tp N`: a copy of a checkpoint whose attention head counts divide by
N, for TENSOR_PARALLEL_SIZE=N, that answers exactly as the original.

Zero heads change nothing. A KV head of zero weights holds zero values, so a query head on it
outputs zeros, and o_proj's zero columns for that head add nothing to the residual stream.
Whole KV groups (a zero KV head and its heads / kv_heads zero query heads) are appended, so
every original query head keeps its KV head (parallel.padded_heads). The bundled SmolLM2-135M
goes from 9 query / 3 KV heads to 12 / 4 for TP=2 (or 4): attention weights and KV cache grow
by a third; greedy answers are unchanged (engines.vllm.parallel has the measured layouts).

Only architectures whose vLLM model reads config.head_dim can hold the padded heads (their
width no longer equals hidden_size / heads): PADDABLE below. Quantized checkpoints are refused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmserve.engines.vllm.parallel import HeadPlan, head_counts, padded_heads
from llmserve.errors import ExitCode, LlmserveError
from llmserve.harness.signals import run_tool
from llmserve.records import atomic_dir

if TYPE_CHECKING:
    import torch

PROG = "llmserve pad-heads"
# vLLM's llama.py (also Mistral) and qwen3.py take head_dim from the config; qwen2.py derives
# it from hidden_size // num_attention_heads, so a padded Qwen2 cannot be described.
PADDABLE = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM")
ROWS = ("q_proj", "k_proj", "v_proj")  # output rows are heads x head_dim (weight and bias)


def read_plan(model_dir: Path, tp: int) -> tuple[dict[str, Any], HeadPlan, int]:
    """The checkpoint's config, its padding plan for `tp` and its head width; refusals are
    LlmserveErrors naming the reason."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise LlmserveError(f"{str(model_dir)!r} has no config.json: not an HF checkpoint")
    config = json.loads(config_path.read_text())
    architectures = config.get("architectures") or ["?"]
    if architectures[0] not in PADDABLE:
        raise LlmserveError(
            f"{architectures[0]} cannot take padded heads (vLLM derives its head width from "
            f"hidden_size); paddable: {', '.join(PADDABLE)}"
        )
    if config.get("quantization_config"):
        raise LlmserveError("the checkpoint is quantized: pad the unquantized one, then quantize")
    heads, kv_heads = head_counts(config)
    plan = padded_heads(heads, kv_heads, tp)
    if not plan.changed:
        raise LlmserveError(
            f"the model's {heads} heads ({kv_heads} KV) already divide by --tp {tp}: serve it "
            "as it is"
        )
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    return config, plan, head_dim


def pad_tensor(name: str, tensor: torch.Tensor, plan: HeadPlan, head_dim: int) -> torch.Tensor:
    """`tensor` with zero heads appended where `name` is an attention projection."""
    import torch

    parts = name.split(".")
    if len(parts) < 2 or parts[-2] not in (*ROWS, "o_proj"):
        return tensor
    if parts[-2] == "o_proj":  # input columns are heads x head_dim
        if parts[-1] != "weight":
            return tensor
        extra = (plan.padded_heads - plan.heads) * head_dim
        return torch.cat([tensor, tensor.new_zeros(tensor.shape[0], extra)], dim=1)
    added = plan.padded_heads - plan.heads if parts[-2] == "q_proj" else (
        plan.padded_kv_heads - plan.kv_heads)
    zeros = tensor.new_zeros(added * head_dim, *tensor.shape[1:])
    return torch.cat([tensor, zeros], dim=0)


def copied_files(model_dir: Path) -> list[Path]:
    """The files copied as they are: tokenizer, chat template, generation config, ... (not
    the weights, config and shard index, which are rewritten, nor hidden markers)."""
    return [
        path for path in sorted(model_dir.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix != ".safetensors"
        and path.name not in ("config.json", "model.safetensors.index.json")
    ]


def pad_checkpoint(model_dir: Path, out: Path, tp: int) -> HeadPlan:
    """Write the padded copy of `model_dir` to `out` (whole or not at all); returns the plan."""
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    config, plan, head_dim = read_plan(model_dir, tp)
    shards = sorted(model_dir.glob("*.safetensors"))
    if not shards:
        raise LlmserveError(f"{str(model_dir)!r} has no *.safetensors weights")
    padded = 0
    with atomic_dir(out) as partial:
        partial.mkdir()
        for source in copied_files(model_dir):
            shutil.copy2(source, partial / source.name)
        total = 0
        for shard in tqdm(shards, desc="pad heads", unit="shard", file=sys.stderr):
            tensors = {}
            for name, tensor in load_file(shard).items():
                tensors[name] = pad_tensor(name, tensor, plan, head_dim).contiguous()
                padded += tensors[name].shape != tensor.shape
                total += tensors[name].numel() * tensors[name].element_size()
            save_file(tensors, partial / shard.name, metadata={"format": "pt"})
        if padded == 0:
            raise LlmserveError(f"no q_proj/k_proj/v_proj/o_proj weights in {str(model_dir)!r}")
        index = model_dir / "model.safetensors.index.json"
        if index.is_file():  # same names, same shards: only the byte total changes
            data = json.loads(index.read_text())
            data.setdefault("metadata", {})["total_size"] = total
            (partial / index.name).write_text(json.dumps(data, indent=2) + "\n")
        config.update(num_attention_heads=plan.padded_heads,
                      num_key_value_heads=plan.padded_kv_heads, head_dim=head_dim,
                      llmserve_padded_heads={"from": [plan.heads, plan.kv_heads], "tp": tp})
        (partial / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return plan


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write a copy of a checkpoint with zero attention heads appended, so that "
        "its head counts divide by TENSOR_PARALLEL_SIZE. The copy answers exactly as the "
        "original (zero heads add nothing); its attention weights and KV cache grow by the "
        "heads added. Serve it with MODEL_DIR=OUT TENSOR_PARALLEL_SIZE=N.",
    )
    parser.add_argument("out", type=Path, help="directory to write (replaced whole)")
    parser.add_argument("--tp", type=int, required=True,
                        help="the TENSOR_PARALLEL_SIZE the copy must divide by")
    parser.add_argument("--model", type=Path, default=None,
                        help="checkpoint directory (default: the served model, MODEL_DIR or "
                        "the bundled one, prepared as `llmserve model` does)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        from llmserve.model import served_model_dir

        if args.tp < 2:
            raise LlmserveError(f"--tp {args.tp}: padding is for a tensor-parallel size of 2+")
        plan = pad_checkpoint(served_model_dir(args.model), args.out, args.tp)
        print(f"{args.out}: {plan.heads} -> {plan.padded_heads} heads, {plan.kv_heads} -> "
              f"{plan.padded_kv_heads} KV heads; serve with MODEL_DIR={args.out} "
              f"TENSOR_PARALLEL_SIZE={args.tp}")
        return int(ExitCode.OK)

    return run_tool(PROG, body)
