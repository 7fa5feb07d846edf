"""`python -m llmserve.judge ...`: the same as eval_local.py."""

from llmserve.judge.cli import main

raise SystemExit(main())
