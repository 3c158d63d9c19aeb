"""The one place the handlers' powertools Logger is created."""

from aws_lambda_powertools import Logger

# POWERTOOLS_SERVICE_NAME (set by the stack) overrides the default service name.
logger = Logger(service="flowdeck")
