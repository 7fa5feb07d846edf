"""The OpenAI-compatible API under /v1, on the engine /predict uses: request models
(requests.py), response objects (objects.py), OpenAI's error shape (errors.py), the API_KEY
check (auth.py), the served model's name (models.py), server-sent events (streaming.py), the
routes (routes.py) and their OpenAPI description (openapi.py)."""
