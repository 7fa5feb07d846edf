"""Budget-aware answers: GSM8K accuracy against latency per token budget, hint and engine."""
