# syntax=docker/dockerfile:1
# backup-glance: docker build -t backup-glance . && docker run -p 8765:8765 backup-glance   (the demo homelab)
#
# Runs as uid/gid 10001 with a read-only root filesystem (docker run --read-only, compose read_only: true);
# the only writable place is the /data volume: the history, and the demo's temporary files (TMPDIR).
# Configuration: /config/backup-glance.yaml (mount it read-only), or any path in $BACKUP_GLANCE_CONFIG.
# Secrets: ${secret:NAME} in the config reads /run/secrets/NAME (Docker secrets). See deploy/compose.yaml.

FROM python:3.11-slim AS builder
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="backup-glance" \
      org.opencontainers.image.description="Backup health for homelabs, native in the Glance dashboard" \
      org.opencontainers.image.licenses="MIT"
# Only the wheel and its dependencies; pip compiles the bytecode here, so nothing is written at run time.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore /wheels/*.whl
# /data is created owned by the service user, so a new named volume starts out writable for it.
RUN groupadd --gid 10001 backup-glance \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin backup-glance \
 && install -d -o 10001 -g 10001 -m 0700 /data
# TMPDIR: the demo homelab keeps its certificates and history in a temporary folder; with a read-only root
# /tmp is not writable, and a tmpfs would be one more thing to remember. Removed again on exit.
ENV BACKUP_GLANCE_DATA=/data \
    TMPDIR=/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
VOLUME /data
USER 10001:10001
EXPOSE 8765
# No curl or wget in the slim image. The port is the default one: change it here too if server.port differs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=3)"]
ENTRYPOINT ["backup-glance"]
CMD ["serve", "--host", "0.0.0.0"]
