"""llmserve: a vLLM inference service with a local judge, benchmark, quantization and tuning."""
