# syntax=docker/dockerfile:1
#
# Hosted Whisper Streaming: GPU image.
#
# Base image: the pinned CTranslate2 wheel (4.8.5) loads, at run time, only libcublas.so.12,
# libcuda.so.1 (the driver, injected by the NVIDIA runtime) and libnccl.so.2 (multi-GPU
# only). The wheel is built without cuDNN (no cudnn name appears in it), so the base is
# the plain CUDA 12 *runtime* image (cuBLAS and NCCL included), not the -cudnn- one,
# about a gigabyte smaller. tests/infra/test_infra_dockerfile.py reads the libraries the
# installed wheel names and checks this choice. The AL2023 ECS GPU AMI ships a driver new
# enough for CUDA 12.8.
#
# Build:  docker build -t hws:dev .                      (serves the embedded tiny.en)
#         docker build --build-arg MODEL=large-v3 -t hws:large-v3 .   (bakes large-v3)

############################
# builder: Python + venv + (optional) model download. Has compilers; never shipped.
############################
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04 AS builder

ARG UV_VERSION=0.13.9
ARG PYTHON_VERSION=3.11
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# DL3008: build-only packages from the pinned base image's Ubuntu release; they never reach
# the runtime stage, so exact apt version pins would only add churn.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# A relocatable CPython (python-build-standalone via uv) at a fixed path that is copied
# as-is into the runtime stage, so the runtime needs neither apt Python nor compilers.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}" \
    && /opt/uv/bin/uv python install "${PYTHON_VERSION}" \
    && "$(/opt/uv/bin/uv python find "${PYTHON_VERSION}")" -m venv /opt/venv

WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY proto ./proto
COPY app ./app
# .'[server]' is '.[server]': the package with its extra server (the core alone is only the client).
RUN /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .'[server]' \
    && /opt/venv/bin/hws-server --help > /dev/null

# Optional model bake: MODEL names a faster-whisper model (e.g. large-v3, distil-large-v3).
# Empty = nothing downloaded; the tiny.en model embedded in the pip package serves.
ARG MODEL=""
RUN mkdir -p /opt/models \
    && if [ -n "${MODEL}" ]; then \
         MODEL="${MODEL}" /opt/venv/bin/python -c "import os; from faster_whisper import download_model; m = os.environ['MODEL']; download_model(m, output_dir='/opt/models/' + m)"; \
       fi

############################
# runtime: CUDA 12 runtime libraries (cuBLAS), no compilers, non-root.
############################
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04 AS runtime

ARG MODEL=""
ARG VERSION=dev

LABEL org.opencontainers.image.title="hosted-whisper-streaming" \
      org.opencontainers.image.description="Streaming speech-to-text gRPC service (faster-whisper / CTranslate2)" \
      org.opencontainers.image.version="${VERSION}"

# NVIDIA_DRIVER_CAPABILITIES=compute,utility: CUDA compute + nvidia-smi/NVML (GPU memory metric).
# LD_LIBRARY_PATH: cuBLAS 12 lives in /usr/local/cuda/lib64, NCCL in /usr/lib/x86_64-linux-gnu,
# the driver's libcuda is injected under /usr/local/nvidia by the NVIDIA runtime.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu:/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/hws \
    HF_HOME=/var/cache/hws/huggingface \
    HWS_HOST=0.0.0.0 \
    HWS_PORT=50051 \
    HWS_METRICS_PORT=8000 \
    HWS_DEVICE=auto \
    HWS_COMPUTE_TYPE=auto \
    HWS_LOG_FORMAT=json \
    HWS_LOG_LEVEL=INFO \
    HWS_GRACE_PERIOD_S=30 \
    HWS_MODEL_CACHE_DIR=/var/cache/hws/models \
    HWS_MODEL=${MODEL:+/opt/models/}${MODEL:-tiny.en-embedded}

RUN groupadd --system --gid 10001 hws \
    && useradd --system --uid 10001 --gid hws --home-dir /home/hws --create-home --shell /usr/sbin/nologin hws \
    && mkdir -p /var/cache/hws/models /var/cache/hws/huggingface \
    && chown -R hws:hws /var/cache/hws

COPY --from=builder /opt/python /opt/python
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/models /opt/models

USER 10001:10001
WORKDIR /home/hws
EXPOSE 50051 8000

# grpc.health.v1 Check on localhost must say SERVING. start-period covers model load.
HEALTHCHECK --interval=15s --timeout=5s --start-period=300s --retries=3 \
    CMD ["/bin/sh", "-c", "hws-healthcheck --addr \"localhost:${HWS_PORT}\" --timeout 3 || exit 1"]

# SIGTERM -> NOT_SERVING, refuse new streams, finish open finals within HWS_GRACE_PERIOD_S.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hws-server"]
