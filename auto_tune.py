"""Search settings for the most tokens/s above a score floor: `python auto_tune.py --help`.

A thin shim over `llmserve tune` (auto_tune.sh is the other); run it with any python: it
re-executes under .venv.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":  # trials start servers; nothing starts on import
    raise SystemExit(run("tune", __file__))
