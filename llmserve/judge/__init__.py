"""The judge: score a running /predict service the way the grading machine does.

Accuracy is jieba RougeL-F1 under two tokenizations (the reference's `compat`, which is blind
to Chinese, and `cjk`, which is not); speed is output tokens per second, both over wall time
and over the engine time the server reports. See `llmserve judge --help`.

Errors are llmserve.errors.LlmserveError (ServerError for the server's problems); exit codes
are llmserve.errors.ExitCode (a failed gate is GATE_FAILED, 3).
"""
