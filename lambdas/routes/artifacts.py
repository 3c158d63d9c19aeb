"""A run's artifacts: list, one file (302 to a presigned URL, or a text preview), all as a ZIP."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.runs.artifacts import ArtifactService
from flowdeck.runs.views import ArtifactFile, ArtifactLink, ArtifactList, ArtifactPreview
from lambdas.deps import RunId, artifact_service
from lambdas.responses import answer_docs, error_docs

router = APIGatewayRouter()

Service = Annotated[ArtifactService, Depends(artifact_service)]
Preview = Annotated[bool, Query(description="Answer the first KiB of a text artifact instead of a redirect.")]
# The dashboard on AWS signs its calls (SigV4): a followed 302 would carry those headers to S3, so it
# asks for the presigned URL as JSON and opens it itself.
AsLink = Annotated[bool, Query(description='Answer `{"url"}` (200) instead of the 302 redirect.')]
REDIRECT: dict[int, OpenAPIResponse] = {
    # No body: the answer is its Location header.
    302: {"description": "Found: `Location` is a presigned S3 URL, valid for 5 minutes", "content": {}}
}


def _redirect(url: str, as_link: bool = False) -> Response[Any]:
    if as_link:
        link = ArtifactLink(url=url)
        return Response(200, content_types.APPLICATION_JSON, link, headers={"Cache-Control": "no-store"})
    return Response(302, headers={"Location": url, "Cache-Control": "no-store"}, body="")


@router.get(
    "/runs/<run_id>/artifacts",
    summary="List a run's artifacts",
    tags=["artifacts"],
    responses={**answer_docs(200, "The run's artifacts", ArtifactList), **error_docs(404, 422)},
)
def list_artifacts(run_id: RunId, service: Service) -> ArtifactList:
    """Every uploaded artifact with step, path, size, content type, sha256, expiry and `expired`."""
    return ArtifactList.model_validate(service.list_artifacts(run_id))


@router.get(
    "/runs/<run_id>/artifacts.zip",
    summary="Download a run's artifacts as one ZIP",
    tags=["artifacts"],
    responses={
        **answer_docs(200, "With `link=true`: the presigned URL of the ZIP", ArtifactLink),
        **REDIRECT,
        **error_docs(404, 422),
    },
)
def artifacts_zip(
    run_id: RunId,
    service: Service,
    step: Annotated[str | None, Query(max_length=64)] = None,
    link: AsLink = False,
) -> Response[Any]:
    """302 to a ZIP of every live artifact (or of one `step`'s), built in S3 by a streaming writer."""
    return _redirect(service.zip_link(run_id, step), link)


@router.get(
    "/runs/<run_id>/artifacts/<step>/<path>",
    summary="Download or preview one artifact",
    description="`path` is the artifact's path in its step and may hold slashes (`reports/junit.xml`).",
    tags=["artifacts"],
    responses={
        **answer_docs(
            200,
            "With `preview=true`: the first KiB of a text artifact; with `link=true`: the presigned URL",
            ArtifactFile,
        ),
        **REDIRECT,
        **error_docs(404, 410, 422),
    },
)
def get_artifact(
    run_id: RunId, step: str, path: str, service: Service, preview: Preview = False, link: AsLink = False
) -> Response[Any]:
    """302 to the file; with `preview=true`, its first KiB as text (422 NotText for binary files)."""
    if preview:
        preview_view = ArtifactPreview.model_validate(service.preview(run_id, step, path))
        return Response(200, content_types.APPLICATION_JSON, preview_view)
    return _redirect(service.link(run_id, step, path), link)


# The same route for paths with slashes, which a <param> does not match: a greedy tail, read from the
# request path (documented once, above).
@router.get("/runs/<run_id>/artifacts/<step>/.+/.+", include_in_schema=False)
def get_nested_artifact(
    run_id: RunId, step: str, service: Service, preview: Preview = False, link: AsLink = False
) -> Response[Any]:
    """GET /runs/{run_id}/artifacts/{step}/{dir/.../file}."""
    path = router.current_event.path.split(f"/runs/{run_id}/artifacts/{step}/", 1)[-1]
    return get_artifact(run_id, step, path, service, preview, link)
