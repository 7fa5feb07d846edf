"""Score the running service like the grader: `python eval_local.py --help`."""

from llmserve.judge.cli import main

raise SystemExit(main())
