# syntax=docker/dockerfile:1
# driftd container image.
#
#   docker build -t driftd .
#   docker run --rm -p 9108:9108 -v "$PWD/config:/etc/driftd:ro" driftd run -c /etc/driftd/demo.yaml
#
# Two stages: the builder installs the dependencies pinned in requirements.lock (every file
# checked against its hash; `make lock` regenerates it from pyproject.toml) and then the package
# itself into a virtualenv; the runtime stage copies only that virtualenv, runs as an
# unprivileged numeric user (Kubernetes `runAsNonRoot` can verify it) and ships the numba
# kernels already compiled, so `driftd run` is ready in about a second instead of compiling
# for several seconds on every start. Every dependency ships manylinux wheels for CPython 3.11
# on x86_64 and aarch64, so no compiler is needed. `hadolint Dockerfile` is clean (a test).
ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/driftd
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY driftd ./driftd
RUN /opt/driftd/bin/pip install --no-cache-dir --require-hashes -r requirements.lock \
 && /opt/driftd/bin/pip install --no-cache-dir --no-deps . \
 && /opt/driftd/bin/driftd --version

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="driftd" \
      org.opencontainers.image.description="Streaming drift detection for ML predictions: Kafka -> drift statistics -> Prometheus -> signed rollback webhooks" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid so volume permissions are predictable across rebuilds. /var/lib/driftd holds
# state (checkpoints, webhook outbox) and is where a volume belongs; the numba cache lives
# outside it so mounting an empty volume does not discard the warmed kernels.
RUN groupadd --system --gid 10001 driftd \
 && useradd --system --uid 10001 --gid driftd --home-dir /var/lib/driftd --shell /usr/sbin/nologin driftd \
 && mkdir -p /var/lib/driftd /var/cache/driftd/numba /etc/driftd \
 && chown -R driftd:driftd /var/lib/driftd /var/cache/driftd

COPY --from=builder /opt/driftd /opt/driftd

ENV PATH=/opt/driftd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/var/cache/driftd/numba

# Numeric, so the kubelet can check runAsNonRoot without reading /etc/passwd (hadolint DL3066).
USER 10001:10001
WORKDIR /var/lib/driftd

# Compile every kernel once, as the user that runs driftd, into NUMBA_CACHE_DIR. numba keys the
# cache by CPU model: on a host with a different CPU the kernels compile once more at start-up
# (the directory stays writable for that).
RUN python -c "from driftd.kernels import warm_up; warm_up()"

# The config's default listener is loopback; in a container the port must be reachable.
ENV DRIFTD_HTTP__LISTEN=0.0.0.0:9108
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('DRIFTD_HEALTHCHECK_URL', 'http://127.0.0.1:9108/healthz'), timeout=4)"]

ENTRYPOINT ["driftd"]
CMD ["run", "-c", "/etc/driftd/driftd.yaml"]
