"""Domain errors: raised by the core, mapped once to HTTP answers (SPEC §3) at the edge."""


class FlowdeckError(Exception):
    """Base of every error the core raises on purpose."""

    code = "FlowdeckError"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDefinition(FlowdeckError):
    """A workflow file that cannot run; `problems` name file, line and field."""

    code = "InvalidDefinition"
    status = 422

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class InvalidInputs(FlowdeckError):
    code = "InvalidInputs"
    status = 422


class BadRequest(FlowdeckError):
    code = "BadRequest"
    status = 400


class WorkflowNotFound(FlowdeckError):
    code = "WorkflowNotFound"
    status = 404


class RunNotFound(FlowdeckError):
    code = "RunNotFound"
    status = 404


class Conflict(FlowdeckError):
    code = "Conflict"
    status = 409


class NotAllowed(FlowdeckError):
    code = "NotAllowed"
    status = 403


class ArtifactNotFound(FlowdeckError):
    code = "ArtifactNotFound"
    status = 404


class ArtifactExpired(FlowdeckError):
    """Past the workflow's retention: gone for the API even before S3's lifecycle deletes it."""

    code = "ArtifactExpired"
    status = 410


class NotText(FlowdeckError):
    """A preview was asked of a binary artifact (422: the request is understood, the file is not text)."""

    code = "NotText"
    status = 422


class Unauthorized(FlowdeckError):
    """A signed request whose signature is missing or wrong (or whose secret is not set up)."""

    code = "Unauthorized"
    status = 401
