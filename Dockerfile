# Flowdeck pool worker: `python -m flowdeck.runner.worker` (the task definition sets the same command).
# Built by `cdk deploy` from an allow-listed context (stacks/assets.py: WORKER_IMAGE_EXCLUDE).
FROM public.ecr.aws/docker/library/python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Step commands are shell scripts: give them the usual basics (TLS roots, curl, git).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/flowdeck
COPY pyproject.toml ./
COPY flowdeck ./flowdeck
COPY statemachines ./statemachines
RUN pip install .

# Steps run as an unprivileged user, in the workflows folder so `./scripts/...` paths resolve
# as they do in the local stack (which sets the same FLOWDECK_WORKSPACE).
RUN useradd --create-home --uid 10001 flowdeck
COPY --chown=flowdeck:flowdeck workflows /opt/flowdeck/workflows
ENV FLOWDECK_WORKSPACE=/opt/flowdeck/workflows
USER flowdeck
WORKDIR /opt/flowdeck/workflows

CMD ["python", "-m", "flowdeck.runner.worker"]
