"""Quantize the served model and rank the variants: `python quantize.py --help`.

A thin shim over `llmserve quantize`; run it with any python: it re-executes under .venv.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":  # compare starts servers whose engines spawn workers
    raise SystemExit(run("quantize", __file__))
