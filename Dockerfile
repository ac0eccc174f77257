# CUDA PyTorch base; `pip install` keeps torch at the version pyproject.toml pins.
ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}
WORKDIR /opt/mlperf-train
COPY . .
# Editable, so rules/ and hparams/ (data, not Python) are read from this folder.
RUN pip install --no-cache-dir -e . && mlperf-train list > /dev/null
ENV MLPERF_TRAIN_CACHE=/cache
VOLUME ["/cache", "/logs", "/data"]
ENTRYPOINT ["mlperf-train"]
CMD ["run", "ncf", "--runs", "1", "--output", "/logs"]
