"""Log output of `shop worker`: one line per record, plain text or JSON (SHOP_LOG_FORMAT).

Messages are written as `what happened key=value ...`, so both formats are easy to search.
Every line goes through the privacy redaction filter first (shop/privacy/logging.py): the JSON
formatter only reads the already redacted message and exception text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from shop.privacy.logging import install_redaction, silence_payload_loggers

TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    install_redaction()
    silence_payload_loggers()
