"""Search settings for the most tokens/s above a score floor: `python auto_tune.py --help`."""

from llmserve.tune.cli import main

raise SystemExit(main())
