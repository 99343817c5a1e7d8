# One image for both entrypoints: the data plane (`memorygraph serve`) and the operator
# (`memorygraph-operator`). Non-root (uid/gid 65532) and fine with a read-only root filesystem:
# nothing is written outside the mounted volumes and /tmp.
#
#   docker build -t ghcr.io/memorygraph/memorygraph:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/memorygraph
COPY pyproject.toml README.md ./
COPY dataplane ./dataplane
COPY operator ./operator
# A regular (non-editable) install: the runtime stage copies only the virtualenv.
RUN /opt/memorygraph/bin/pip install --upgrade pip \
 && /opt/memorygraph/bin/pip install . \
 && /opt/memorygraph/bin/python -m compileall -q /opt/memorygraph

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="memorygraph" \
      org.opencontainers.image.description="MemoryGraph data plane and Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/memorygraph/memorygraph" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 memorygraph \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin memorygraph \
 && install -d -o 65532 -g 65532 /var/lib/memorygraph /etc/memorygraph
COPY --from=build /opt/memorygraph /opt/memorygraph
# Bytecode was compiled at build time; never try to write .pyc files at run time.
ENV PATH=/opt/memorygraph/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/tmp
USER 65532:65532
WORKDIR /var/lib/memorygraph
EXPOSE 50051 9090
CMD ["memorygraph", "serve", "--config", "/etc/memorygraph/memorygraph.yaml"]
