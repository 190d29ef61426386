# The metalloid image: one image for `metalloid controller` and `metalloid
# speaker` (deploy/) and for `metalloid run`. It is the supported install next
# to a venv: the `supervisor` package name clashes with supervisord's, so the
# two must never share an environment.
#
#   docker build -t metalloid:0.1.0 .
#
# Runs as a non-root user (uid 65532) by default; the speaker's pod spec
# chooses uid 0 with every capability dropped but NET_RAW (see
# deploy/base/speaker.yaml for why). Works with a read-only root filesystem:
# bytecode is compiled at build time and nothing writes outside /tmp.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY supervisor ./supervisor
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels metalloid \
    && rm -rf /wheels \
    && python -m compileall -q /usr/local/lib/python3.11/site-packages \
    && groupadd --system --gid 65532 metalloid \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin metalloid
USER 65532:65532
# 7472/tcp: /metrics, /healthz, /readyz, /status; 7946/udp: membership heartbeats.
EXPOSE 7472/tcp 7946/udp
ENTRYPOINT ["metalloid"]
CMD ["--help"]
