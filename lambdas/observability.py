"""The one place the handlers' powertools Logger is created."""

import logging
import os

from aws_lambda_powertools import Logger

from flowdeck.constants import ENV_HANDLER_LOG


def _local_log_file() -> logging.Handler | None:
    """Locally the handlers log to a file beside the workers' logs; on Lambda, to stdout (CloudWatch)."""
    path = os.environ.get(ENV_HANDLER_LOG)
    return logging.FileHandler(path, encoding="utf-8") if path else None


# POWERTOOLS_SERVICE_NAME (set by the stack) overrides the default service name.
logger = Logger(service="flowdeck", logger_handler=_local_log_file())
