"""The vLLM engine (ENGINE=vllm): engine.py (VllmEngine, the Engine Protocol over vLLM's
AsyncLLM), args.py (engine and sampling arguments), settings.py (its settings group and the
validators that ask vLLM), cpu_env.py (its measured CPU launch environment).

Importing this package imports nothing heavy; vLLM loads when an engine is built.
"""
