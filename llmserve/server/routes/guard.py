"""What the generating routes answer when a guarded generation (llmserve.engines.guard)
ends without a result: the client left, or the server refused it for now."""

from __future__ import annotations

# Seconds a refused client is told to wait (Retry-After). Short: prompts finish continuously,
# so room frees up within seconds under a load that only just overflows.
RETRY_AFTER_S = 1
# The status a request gets when its client is gone (nginx's "client closed request"): nobody
# reads it, but the access log shows the request ended without an answer.
CLIENT_CLOSED = 499
