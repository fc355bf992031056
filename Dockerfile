# ooda's image: `ooda run` for the chart's loop Deployment, and the Ray head and workers of its
# RayService (KubeRay replaces the entrypoint with `ray start`). Build from the repository root:
#   docker build -t ooda:0.1.0 .
# PyTorch comes from its CPU index: the loop and the LSTM's scoring need no GPU
# (`--build-arg TORCH_INDEX=` builds from PyPI alone, where that index is out of reach).
FROM python:3.11-slim AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ooda && /opt/ooda/bin/pip install uv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY contracts contracts
COPY ooda ooda
COPY lab lab
COPY features features
COPY models models
COPY training training
COPY serving serving
COPY actuators actuators
# uv, as `make install`: pip's resolver backtracks for a long time over this dependency set.
RUN /opt/ooda/bin/uv pip install --python /opt/ooda/bin/python --compile-bytecode \
        ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} '.[cloud]' \
    && /opt/ooda/bin/uv pip install --python /opt/ooda/bin/python --compile-bytecode \
        --no-deps 'drain3==0.9.11' \
    && /opt/ooda/bin/uv pip uninstall --python /opt/ooda/bin/python uv

FROM python:3.11-slim
RUN useradd --uid 10001 --no-create-home --home-dir /var/lib/ooda ooda
COPY --from=build /opt/ooda /opt/ooda
# The root filesystem is read-only in the chart: caches go to its /tmp volume.
ENV PATH=/opt/ooda/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache
USER 10001
WORKDIR /var/lib/ooda
ENTRYPOINT ["ooda"]
CMD ["run", "--config", "/etc/ooda/config.yaml"]
