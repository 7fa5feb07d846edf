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
    HOST=0.0.0.0 \
    PORT=8000 \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1
RUN python download_model.py

# Several GPUs: pass the settings at run time, e.g.
#   docker run --gpus all -e DATA_PARALLEL_SIZE=2 ...      full copies, one per GPU (throughput)
#   docker run --gpus all -e TENSOR_PARALLEL_SIZE=2 ...    one copy sharded over 2 GPUs (heads
#     must divide by it; else `llmserve pad-heads OUT --tp 2` and MODEL_DIR=OUT, same answers)
#   docker run --gpus '"device=0"' -e ENGINE_REPLICAS=2 ... 2 engines sharing one GPU (small models)
# add --ipc=host (or --shm-size) for TENSOR/PIPELINE_PARALLEL_SIZE > 1: vLLM's workers share
# memory. Several machines: see the README's "Several GPUs, several machines" (Ray).
EXPOSE 8000
ENTRYPOINT []
# What run_model.sh runs: the engine's launch environment, exit 1 when the engine dies (for a
# restart policy), drain on SIGTERM (`docker stop`). HOST and PORT above; tests/http/test_docker_cmd.py
# runs exactly this command.
CMD ["llmserve", "serve"]
