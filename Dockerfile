# fcmon: one image for the crawler, the worker and the gateway (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 FCMON_DATA_DIR=/data MPLCONFIGDIR=/tmp/matplotlib
# WeasyPrint (PDF packets and reports) lays text out with Pango
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY guards ./guards
COPY crawlers ./crawlers
COPY config ./config
RUN pip install --no-cache-dir '.[kafka,elasticsearch]' \
    && useradd --system --uid 10001 --home-dir /data fcmon && mkdir -p /data && chown fcmon /data
USER fcmon
VOLUME ["/data"]
ENTRYPOINT ["fcmon"]
CMD ["--help"]
