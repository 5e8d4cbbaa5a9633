"""gunicorn settings for the shop's web app: ``gunicorn -c python:shop.gunicorn_conf 'shop:create_app()'``.

Command-line options and ``GUNICORN_CMD_ARGS`` (e.g. ``--workers 4``, ``--bind``) still win.
The access log keeps the time, method, path with order/download tokens replaced by a short
tag (``/orders/<tok:3f9a>``), protocol, status, size and duration: no client address, user
agent, referer or query string.
"""

from shop.privacy.logging import access_log_format as _format

bind = "127.0.0.1:8000"
accesslog = "-"
access_log_format = _format
logger_class = "shop.privacy.gunicorn.PrivateLogger"
