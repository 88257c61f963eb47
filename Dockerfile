# One image for web, worker, beat, flower, migrate and the sandbox; docker-compose.yml picks the command.
# Build: docker build -t whatsapp-console .   (docker compose builds it for you)

# --- build: install the pinned requirements into a virtualenv that the runtime stage copies -------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt

# --- runtime: no compilers, no pip cache, a non-root user -----------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles
RUN groupadd --system --gid 10001 console \
    && useradd --system --uid 10001 --gid console --home-dir /app --shell /usr/sbin/nologin console
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app
# The code stays owned by root: the app user can read it, not rewrite it.
# Static files are collected into the image: whitenoise serves them from gunicorn with no volume or nginx.
# CONSOLE_VAR_DIR keeps the settings' embedded-mode folders out of /app while no DATABASE_URL is set.
RUN CONSOLE_VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var
USER console
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/config/healthcheck.py", "http://127.0.0.1:8000/health"]
# Workers: WEB_CONCURRENCY (default 2 x CPUs + 1, at most 9); see config/gunicorn.py.
CMD ["gunicorn", "config.wsgi", "--config", "python:config.gunicorn"]
