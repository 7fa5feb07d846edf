"""`python -m llmserve <command> ...`: the same command line as the `llmserve` console script.

`python -m llmserve serve` serves (run_model.sh and harness.launch.serve_command use it).
"""

from llmserve.cli import main

if __name__ == "__main__":  # engines spawn workers that re-import the main module
    raise SystemExit(main())
