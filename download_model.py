"""Download MODEL_ID from ModelScope at build time (see python download_model.py --help)."""

from llmserve.download import main

if __name__ == "__main__":
    raise SystemExit(main())
