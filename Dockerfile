# Model Hub production image: one image for the web (ASGI), worker and beat services.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Production dependencies only: tests, lint and benchmarks have their own files under requirements/.
COPY requirements/base.txt requirements/base.txt
RUN pip install -r requirements/base.txt

COPY . .
# collectstatic only reads settings; these throwaway keys exist for this build step alone.
RUN SECRET_KEY=collectstatic-build-step-only-not-a-secret-000 \
    JWT_SIGNING_KEY=collectstatic-build-step-only-not-a-secret-111 \
    python manage.py collectstatic --noinput

# The shared Prometheus multiprocess directory (a named volume in docker-compose.yml takes this owner).
RUN useradd --system --uid 1000 modelhub && chown -R modelhub /app \
    && mkdir -p /var/lib/modelhub-metrics && chown modelhub /var/lib/modelhub-metrics
USER modelhub
EXPOSE 8000
CMD ["uvicorn", "modelhub.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
