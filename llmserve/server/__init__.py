"""The HTTP service: `create_app()` (llmserve.server.app) builds the FastAPI app over an engine
from llmserve.engines; routes/ holds the endpoints, errors.py maps exceptions to responses."""
