"""Download MODEL_ID from ModelScope at build time (see python download_model.py --help).

A thin shim over `llmserve download`. It re-executes under .venv when there is one; the Docker
image has none and runs it with its own python.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":
    raise SystemExit(run("download", __file__))
