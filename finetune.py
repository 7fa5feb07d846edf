"""LoRA fine-tune the served model, or merge an adapter: `python finetune.py --help`.

A thin shim over `llmserve finetune`; run it with any python: it re-executes under .venv.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":
    raise SystemExit(run("finetune", __file__))
