"""The service the grader talks to: `uvicorn serve:app --host 0.0.0.0 --port 8000`."""

from llmserve.cli.serve import uvicorn_app

app = uvicorn_app()
