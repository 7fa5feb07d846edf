"""The llama.cpp engine (ENGINE=llamacpp): a GGUF model served by llama-cpp-python's low-level
API, several sequences per llama_decode call (llmserve.engines.llamacpp.engine)."""
