"""The service the grader talks to: `uvicorn serve:app --host 0.0.0.0 --port 8000`."""

from llmserve.server.app import create_app

app = create_app()
