"""`python -m llmserve.tune`: the auto-tuner (the same as auto_tune.py)."""

from llmserve.tune.cli import main

raise SystemExit(main())
