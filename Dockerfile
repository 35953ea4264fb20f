# Crossdock's forwarding daemon (`crossdock run`) as an image. docs/deploy.md says how to run it
# alone on its SQLite outbox (a volume) or as a fleet on PostgreSQL (compose.yaml).
#
#   docker build -t crossdock .
#   docker run -v crossdock-data:/var/lib/crossdock -v ./crossdock.yaml:/etc/crossdock/crossdock.yaml:ro \
#     -p 8088:8088 crossdock
FROM python:3.11-slim

# The daemon never needs root: it binds an unprivileged port and writes only its outbox.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/crossdock \
        --shell /usr/sbin/nologin crossdock \
    && mkdir -p /var/lib/crossdock /etc/crossdock \
    && chown crossdock:crossdock /var/lib/crossdock

WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY core core
COPY plugins plugins
COPY mappings mappings
# The postgres extra: the same image serves a lone SQLite daemon and a PostgreSQL fleet.
RUN pip install --no-cache-dir '.[postgres]' && rm -rf /src

# Created above and owned by crossdock, so a fresh named volume starts writable by it.
VOLUME /var/lib/crossdock
WORKDIR /var/lib/crossdock
COPY docs/deploy/crossdock.yaml /etc/crossdock/crossdock.yaml

USER crossdock
ENV CROSSDOCK_CONFIG=/etc/crossdock/crossdock.yaml \
    CROSSDOCK_OUTBOX_URL=sqlite:////var/lib/crossdock/crossdock.db \
    CROSSDOCK_HOST=0.0.0.0 \
    CROSSDOCK_PORT=8088 \
    CROSSDOCK_OPS_HOST=127.0.0.1 \
    CROSSDOCK_OPS_PORT=8089 \
    PYTHONUNBUFFERED=1
EXPOSE 8088

# The ops listener's /healthz answers 200 while the daemon runs, the collector on or off
# (docs/operations.md); it listens on the container's loopback unless CROSSDOCK_OPS_HOST says
# otherwise (0.0.0.0 for a Prometheus outside the container). The slim image has no curl;
# Python is there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CROSSDOCK_OPS_PORT', '8089'), timeout=4)"]

# Exactly the command the tests start (tests/core/test_deploy.py checks it); arguments given
# to `docker run` follow it, e.g. `-v`. SIGTERM stops it gracefully (STOP_GRACE, 10 s).
ENTRYPOINT ["crossdock", "run"]
STOPSIGNAL SIGTERM
