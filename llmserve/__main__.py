"""`python -m llmserve`: serve serve:app with uvicorn on the HOST and PORT settings."""

import uvicorn

from llmserve.settings import load_settings

if __name__ == "__main__":
    settings = load_settings()
    uvicorn.run("serve:app", host=settings.host, port=settings.port)
