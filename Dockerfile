# The shop's web app and worker in one image: `docker compose up` runs both (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SHOP_INSTANCE_PATH=/var/lib/shop
RUN useradd --system --home /var/lib/shop --create-home shop

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shop ./shop
COPY templates ./templates
COPY migrations ./migrations
RUN pip install . && rm -rf /src

USER shop
WORKDIR /var/lib/shop
EXPOSE 8000
# Threaded workers (shop/gunicorn_conf.py: gthread, 8 threads, 30 s timeout checked against
# SHOP_REQUEST_BUDGET_SECONDS at start-up), one process per core (docs/DEPLOY.md): a hanging
# payment provider holds one thread for at most the budget, never the whole shop.
# Command-line options would win over this variable, so the worker count lives only here: run
# with -e GUNICORN_CMD_ARGS="--workers 4" to change it.
ENV GUNICORN_CMD_ARGS="--workers 2"
# shop/gunicorn_conf.py: access log without client address, query string or order tokens.
CMD ["gunicorn", "-c", "python:shop.gunicorn_conf", "--bind", "0.0.0.0:8000", "shop:create_app()"]
