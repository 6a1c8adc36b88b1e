# syntax=docker/dockerfile:1
# One image for the Python services of docker-compose.yml: the gateway (the
# default command), the worker and the mock upstream differ only in command.
# Build from the repository root: docker build -t spool .
# No secret is baked in: OPENAI_API_KEY and the rest come from the
# environment at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/spool
WORKDIR /src
# Dependencies first (every one pinned, transitive ones included), so a code
# change does not reinstall them.
COPY docker/requirements.txt docker/requirements.txt
RUN /opt/spool/bin/pip install --requirement docker/requirements.txt
COPY pyproject.toml README.md ./
COPY spool/ spool/
COPY gateway/ gateway/
COPY worker/ worker/
COPY cli/ cli/
COPY mock_upstream/ mock_upstream/
RUN /opt/spool/bin/pip install --no-deps --no-build-isolation . \
    && /opt/spool/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 spool \
    && useradd --system --uid 10001 --gid spool --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin spool
COPY --from=build /opt/spool /opt/spool
ENV PATH=/opt/spool/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 8090
CMD ["spool", "gateway", "--bind", "0.0.0.0:8000"]
