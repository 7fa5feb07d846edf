"""One LoRA SFT run: trl's SFTTrainer over peft's LoraConfig, a checkpoint each epoch, resumed
from the newest checkpoint when the output folder has one, then the adapter, a loss curve and
a manifest of how the adapter was made.

Layout of the output folder:
  checkpoint-<step>/  Trainer checkpoints (one per epoch; a rerun resumes from the newest)
  adapter/            the final adapter (adapter_config.json, adapter_model.safetensors) and
                      the tokenizer: what `llmserve finetune merge` and LORA_MODULES take
  loss.png            training loss per logged step
  manifest.json       base model, data, options, library versions, time, losses, hardware
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llmserve.errors import LlmserveError
from llmserve.finetune.data import Conversation
from llmserve.harness.charts import pyplot, save_figure
from llmserve.harness.metadata import hardware, package_versions
from llmserve.records import write_json

ADAPTER_DIR = "adapter"
MANIFEST = "manifest.json"
LOSS_CHART = "loss.png"


@dataclass(frozen=True)
class LoraOptions:
    """What the command line sets: LoRA shape and the training schedule."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    epochs: float = 3.0
    learning_rate: float = 2e-4
    max_length: int = 1024
    batch_size: int = 4
    max_steps: int = -1  # > 0: stop after this many steps (smoke tests)
    seed: int = 0
    qlora: bool = False


def has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def check_qlora(options: LoraOptions) -> None:
    """QLoRA loads the base in 4 bits through bitsandbytes, which needs a CUDA GPU."""
    if not options.qlora:
        return
    if not has_cuda():
        raise LlmserveError(
            "--qlora needs a CUDA GPU (bitsandbytes 4-bit); this machine has none: "
            "drop --qlora for plain LoRA"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise LlmserveError("--qlora needs bitsandbytes: pip install bitsandbytes") from error


def load_base(base: Path, options: LoraOptions) -> Any:
    """The base model: float32 on CPU (tiny models train fastest so, and exactly), bf16 on
    a GPU, 4-bit NF4 with --qlora."""
    import torch
    from transformers import AutoModelForCausalLM

    if options.qlora:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(base, quantization_config=quant)
        return prepare_model_for_kbit_training(model)
    dtype = torch.bfloat16 if has_cuda() else torch.float32
    return AutoModelForCausalLM.from_pretrained(base, dtype=dtype)


def newest_checkpoint(output: Path) -> Path | None:
    """The checkpoint a rerun resumes from (the highest step), or None."""
    found = [p for p in output.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def train(
    base: Path,
    rows: list[Conversation],
    output: Path,
    options: LoraOptions,
    source: dict[str, Any],
) -> dict[str, Any]:
    """Train (or resume) and write adapter/, loss.png and manifest.json; returns the manifest."""
    check_qlora(options)
    if not rows:
        raise LlmserveError("no training examples")
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    output.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = SFTConfig(
        output_dir=str(output),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        learning_rate=options.learning_rate,
        per_device_train_batch_size=options.batch_size,
        max_length=options.max_length,
        save_strategy="epoch",
        logging_steps=1,
        report_to=[],
        seed=options.seed,
        use_cpu=not has_cuda(),
        bf16=has_cuda(),
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules="all-linear",  # attention and MLP projections; vLLM serves these
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=load_base(base, options),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora,
    )
    resume = newest_checkpoint(output)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - start
    adapter = output / ADAPTER_DIR
    trainer.save_model(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    losses = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    chart_loss(losses, output / LOSS_CHART)
    manifest = {
        "base_model": str(base),
        "data": source,
        "examples": len(rows),
        "options": asdict(options),
        "resumed_from": resume.name if resume else None,
        "global_step": trainer.state.global_step,
        "train_seconds_this_run": round(seconds, 1),
        "train_loss": result.training_loss,
        "losses": [{"step": s, "loss": loss} for s, loss in losses],
        "device": "cuda" if has_cuda() else "cpu",
        "hardware": hardware(),
        "versions": package_versions(("torch", "transformers", "peft", "trl")),
    }
    write_json(output / MANIFEST, manifest)
    return manifest


def chart_loss(losses: list[tuple[int, float]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in losses], [v for _, v in losses], marker=".")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("LoRA fine-tune")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
