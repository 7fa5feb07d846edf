# GPU image for the grading machine: vLLM's CUDA image + this service + the model, fetched
# at build time (nothing is downloaded at serve time).
FROM vllm/vllm-openai:v0.26.0

WORKDIR /app
COPY requirements.txt requirements-common.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# The `llmserve` command; editable, so /app is what runs (the image has no .venv, so the
# top-level scripts run under this python).
RUN pip install --no-cache-dir --no-deps -e .
ARG MODEL_ID=qwen/Qwen2.5-1.5B-Instruct
ENV MODEL_ID=${MODEL_ID} \
    MODELS_ROOT=/app/model \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1
RUN python download_model.py

EXPOSE 8000
ENTRYPOINT []
CMD ["uvicorn", "serve:app", "--host", "0.0.0.0", "--port", "8000"]
