"""Answer shaping, server-side and engine-neutral: length routing (a per-prompt max_tokens
learned from the tune split), CJK-aware post-processing of answers, and the budget hint.
Every option is off by default (ShapingSettings)."""
