"""Quantize the served model and rank the variants: `python quantize.py --help`."""

from llmserve.quantize.cli import main

if __name__ == "__main__":  # compare starts servers whose engines spawn workers
    raise SystemExit(main())
