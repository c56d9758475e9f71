# wale-sidecar: WAL-E and the HTTP sidecar that serves it.
#
# The runtime stage installs what scripts/setup.sh installs for the tests
# (RUNTIME_DEBS, scripts/wal-e-requirements.txt); scripts/lint-dockerfile.ts
# checks that the two lists stay the same.

ARG BUN_VERSION=1.4.5

FROM oven/bun:${BUN_VERSION}-debian AS build
WORKDIR /src
COPY package.json bun.lock ./
RUN bun install --frozen-lockfile --production
COPY tsconfig.json ./
COPY src ./src
RUN bun run build

FROM debian:bookworm-slim AS runtime
# The uid and gid that own PGDATA in the database container. 70 is the
# postgres user of the Alpine-based timescale/timescaledb and postgres:*-alpine
# images; use 999 for the Debian-based postgres images.
ARG WALE_UID=70
ARG WALE_GID=70

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv lzop pv postgresql-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY scripts/wal-e-requirements.txt /tmp/wal-e-requirements.txt
# WAL-E's sdist is not compiled to bytecode on install, and the postgres user
# cannot write __pycache__ here: compile it once, not at every WAL-E start.
# Then what only installing needs goes (pip and setuptools, 25 MB: the wal-e
# script loads through importlib.metadata), and the test suites that gevent,
# greenlet and zope.interface ship (6 MB).
RUN python3 -m venv /opt/wal-e \
 && /opt/wal-e/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/wal-e-requirements.txt \
 && /opt/wal-e/bin/python -m compileall -q /opt/wal-e/lib/python3*/site-packages/wal_e \
 && /opt/wal-e/bin/pip uninstall -q -y --disable-pip-version-check setuptools pip \
 && find /opt/wal-e/lib -depth -type d \( -name tests -o -path '*/gevent/testing' \) -exec rm -rf {} + \
 && rm /tmp/wal-e-requirements.txt

RUN groupadd --system --gid "${WALE_GID}" postgres \
 && useradd --system --uid "${WALE_UID}" --gid postgres --home-dir /var/lib/postgresql --no-create-home postgres

COPY --from=build /src/dist/wale-sidecar /usr/local/bin/wale-sidecar

ENV PATH=/opt/wal-e/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    WALE_LISTEN_PORT=80 \
    WALE_LOG_DESTINATION=stderr

USER postgres
EXPOSE 80
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s CMD ["wale-sidecar", "ping"]
# tini is PID 1: WAL-E's prefetch processes get orphaned and must be reaped.
ENTRYPOINT ["tini", "--", "wale-sidecar"]
CMD ["serve"]
