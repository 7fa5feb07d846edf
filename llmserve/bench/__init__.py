"""The benchmark: /predict against raw vLLM, `vllm serve` and transformers, in one run.

Same model, same templated prompt token ids, same engine settings for every system; each
system runs in its own process, one after another. See `llmserve bench --help`.

Errors are llmserve.errors.LlmserveError (ServerError for a server's problems); a system's
failure is recorded in the run's record and the others still run (exit code 1).
"""
