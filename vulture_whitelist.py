"""Names vulture reports unused that a framework, a protocol or a record reads (each line says which).

Only true false positives belong here; dead code is deleted instead. Run by `make deadcode`.
"""

# ruff: noqa: B018 - a vulture whitelist is bare attribute reads by design.
from typing import Any

_: Any = None

# Context-manager and patched-signature parameters the protocol passes but the body needs not read.
_.trace  # flowdeck/cli/client.py ApiClient.__exit__
_.tb  # flowdeck/local/stack.py and flowdeck/stores/conditions.py __exit__
_.state_credentials  # flowdeck/local/emulator.py: moto's boto_client_for signature
_.boto_service_name  # flowdeck/local/ecs_tasks.py: moto's _normalise_parameters/_response signature

# Attributes libraries read after we set them.
_.justify  # flowdeck/cli/costs.py: rich Column alignment
_.requires_request_body  # flowdeck/cli/sigv4.py: httpx.Auth reads it before auth_flow
_.auth_flow  # flowdeck/cli/sigv4.py: httpx.Auth calls it for every request
_._outcome  # flowdeck/local/emulator.py: moto's callback endpoint, reset for a new attempt
_._normalise_parameters  # flowdeck/local/ecs_tasks.py: moto's ECS integration calls it
_._normalise_response  # flowdeck/local/ecs_tasks.py: moto's ECS integration calls it
_.stopped_reason  # flowdeck/local/ecs_tasks.py: moto's ECS task, read by DescribeTasks
_.last_status  # flowdeck/local/ecs_tasks.py: moto's ECS task, read by DescribeTasks
_.protocol_version  # flowdeck/local/emulator.py: werkzeug's request handler (keep-alive)
_.raw_headers  # flowdeck/local/http.py: starlette Response headers
_.should_exit  # flowdeck/local/http.py: uvicorn Server stops when set
_.seekable  # flowdeck/stores/artifacts.py: zipfile asks its stream
_.compress_type  # flowdeck/stores/artifacts.py: zipfile.ZipInfo
_.try_bundle  # stacks/bundling.py: CDK's ILocalBundling interface (jsii calls it)
_.access_log_settings  # stacks/live.py: CfnStage property, synthesized into the template
_.live_logs  # stacks/live.py: the stack exposes its construct (STYLE 4)

# The Lambda context the local HTTP server hands to handlers (Powertools' logger reads these).
_.function_name  # flowdeck/local/http.py
_.function_version  # flowdeck/local/http.py
_.memory_limit_in_mb  # flowdeck/local/http.py
_.invoked_function_arn  # flowdeck/local/http.py
_.log_group_name  # flowdeck/local/http.py
_.log_stream_name  # flowdeck/local/http.py

# Fields of pydantic models: validated from input or serialized into API answers.
_.currency  # flowdeck/costs/calculator.py rate card, flowdeck/costs/models.py RunCosts
_.compute_seconds  # flowdeck/costs/models.py ComputeCost
_.by_compute  # flowdeck/costs/models.py RunCosts
_.manual  # flowdeck/definition/models.py Trigger (`trigger: manual: {}` in YAML)

# Members of a value vocabulary: run records carry them though no code names them.
_.SCHEDULE  # flowdeck/status.py Trigger
_.INCIDENT  # flowdeck/status.py Trigger

# Loaded by dotted path ("module:Class"), the way a custom cost calculator is configured.
_.FlatCalculator  # tests/unit/test_cost_calculators.py
_.NotACalculator  # tests/unit/test_cost_calculators.py

# http.server calls do_<METHOD> for each request.
_.do_PUT  # tests/integration/test_task_protection.py: the ECS agent stand-in's PUT

# pytest runs an autouse fixture in each module that imports it.
_.no_worker_outlives_its_test  # tests/integration/test_task_protection.py: ends workers a test left running
