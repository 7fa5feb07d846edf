"""Score the running service like the grader: `python eval_local.py --help`.

A thin shim over `llmserve judge` (judge.sh is the other); run it with any python: it
re-executes under .venv.
"""

from llmserve.cli.bootstrap import run

if __name__ == "__main__":  # --start launches a server; nothing starts on import
    raise SystemExit(run("judge", __file__))
