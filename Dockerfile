# msphub image: one image for every role (api, worker, scheduler, migrate).
# Build: docker build -t msphub .   Run: docker compose up
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MSPHUB_ENV=production \
    MSPHUB_LOG_FORMAT=json \
    MSPHUB_DATA_DIR=/data

WORKDIR /app

# The package itself (README.md is optional for the build and not copied).
COPY pyproject.toml ./
COPY hub ./hub
COPY connectors ./connectors
RUN pip install '.[postgres]'

# Admin-edited YAML; the defaults config_dir/mappings_dir/playbooks_dir resolve
# against WORKDIR. Mount over them to use your own.
COPY config ./config
COPY mappings ./mappings
COPY playbooks ./playbooks

RUN useradd --system --uid 10001 --create-home --home-dir /home/msphub msphub \
    && mkdir -p /data \
    && chown msphub:msphub /data
USER msphub

VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["msphub"]
CMD ["serve", "--host", "0.0.0.0"]
