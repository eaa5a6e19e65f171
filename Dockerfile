# The JCT image: one image for the `api` (gunicorn), `worker` (jct worker) and `migrate`
# (jct migrate) services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so this layer is rebuilt only when requirements.txt changes.
# requirements-otel.txt too: the image can send spans when OTEL_EXPORTER_OTLP_ENDPOINT is set.
COPY requirements.txt requirements-otel.txt ./
RUN pip install -r requirements.txt -r requirements-otel.txt

# The project itself: installs the top-level modules and packages (pyproject.toml) and the
# `jct` command. The source stays in /app as well: gunicorn and `python -m dramatiq` put the
# working directory first on sys.path, and Flask finds templates/ and static/ beside app.py
# (pyproject.toml does not package them).
COPY . .
RUN pip install --no-deps . \
 && useradd --system --user-group --uid 10001 --home-dir /var/lib/jct --shell /usr/sbin/nologin jct \
 && mkdir -p /var/lib/jct/logs \
 && chown -R jct:jct /var/lib/jct

# JCT_HOME holds the shared log file and the spool of log blobs the object store refused.
# A named volume mounted here starts with this directory's ownership, so the non-root user can
# write it.
ENV JCT_HOME=/var/lib/jct \
    JCT_LOG_FILE=/var/lib/jct/logs/jct.jsonl

USER jct
EXPOSE 8000

# gunicorn_conf.py reads JCT_HOST/JCT_PORT at import; compose sets JCT_HOST=0.0.0.0.
CMD ["jct", "api"]
