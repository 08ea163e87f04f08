# One image for the site (gunicorn) and the worker (fvlab worker); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FVLAB_DATA_DIR=/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY annotate ./annotate
COPY analysis ./analysis
COPY migrations ./migrations
RUN pip install .

RUN useradd --create-home --uid 1000 fvlab && mkdir -p /data && chown fvlab /data
USER fvlab
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["gunicorn", "--config", "python:annotate.gunicorn_conf", "--bind", "0.0.0.0:8000", "annotate:create_app()"]
