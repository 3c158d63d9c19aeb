"""An API answer checked against /openapi.json: its operation documents the status, and the body fits."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from openapi_schema_validator import OAS31Validator

JSON = "application/json"
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]


class Contract:
    """The document's operations, matched by method and path (literal paths before templated ones)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations = sorted(
            (
                Operation(method.upper(), template, _path_pattern(template), spec)
                for template, ops in document["paths"].items()
                for method, spec in ops.items()
            ),
            key=lambda op: len(_PARAM.findall(op.template)),
        )

    def operation(self, method: str, path: str) -> Operation | None:
        return next(
            (op for op in self.operations if op.method == method and op.pattern.fullmatch(path)), None
        )

    def operation_at(self, method: str, template: str) -> Operation:
        return next(op for op in self.operations if (op.method, op.template) == (method, template))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A schema with its top-level $ref followed."""
        while "$ref" in schema:
            schema = self.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def schema(self, op: Operation, status: int) -> dict[str, Any] | None:
        """The JSON body schema documented for `status`, or None where it documents no JSON body."""
        content = op.spec["responses"][str(status)].get("content") or {}
        return (content.get(JSON) or {}).get("schema")

    def problems(self, method: str, path: str, status: int, headers: dict[str, str], body: str) -> list[str]:
        """What does not fit: an undocumented status, or a JSON body its schema refuses."""
        op = self.operation(method, path)
        # Unknown routes (404 NotFound) and unexpected errors (500) have no operation's contract.
        if op is None or status >= 500:
            return []
        where = f"{method} {op.template} -> {status}"
        if str(status) not in op.spec["responses"]:
            return [f"{where}: status not documented"]
        content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        schema = self.schema(op, status)
        if not content_type.startswith(JSON):
            return []
        if schema is None:
            return [f"{where}: a JSON body, but no JSON schema documented"]
        validator = _validator(json.dumps(schema), json.dumps(self.document["components"]))
        return [
            f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(json.loads(body))
        ]


def _path_pattern(template: str) -> re.Pattern[str]:
    # `path` (an artifact's path in its step) may hold slashes; every other parameter is one segment.
    parts = re.split(r"(\{\w+\})", template)
    regex = "".join(
        ("(.+)" if part == "{path}" else "([^/]+)") if _PARAM.fullmatch(part) else re.escape(part)
        for part in parts
    )
    return re.compile(regex)


@cache
def _validator(schema: str, components: str) -> OAS31Validator:
    # The document's $refs point at #/components/...: resolve them against a root that holds them.
    return OAS31Validator(json.loads(schema) | {"components": json.loads(components)})


@cache
def api_contract() -> Contract:
    """The contract of the API as this code generates it."""
    from lambdas.api import _openapi_document

    return Contract(json.loads(_openapi_document()))
