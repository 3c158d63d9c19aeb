"""`flowdeck artifacts RUN [--download PATH] [--zip] [--step S]`: list a run's artifacts or download them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError

DOWNLOAD_CHUNK = 1024 * 1024


def _size(value: int | None) -> str:
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # pragma: no cover - the loop always returns


def _location(client: ApiClient, path: str, params: dict[str, Any]) -> str:
    """The presigned URL a 302 answer points at; ApiError with the API's message otherwise."""
    try:
        response = client.http.get(path, params={k: v for k, v in params.items() if v is not None})
    except httpx.HTTPError as exc:
        raise ApiError(f"request to the Flowdeck API at {client.base_url} failed: {exc}") from None
    if response.status_code in (301, 302, 303, 307) and "location" in response.headers:
        return response.headers["location"]
    raise client.error_for(response, path)


def fetch(url: str, target: Path) -> int:
    """Stream a presigned URL to `target`; the bytes written."""
    written = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with httpx.stream("GET", url, timeout=60.0) as response:
            if not response.is_success:
                raise ApiError(f"download failed: HTTP {response.status_code} from the artifact store")
            with target.open("wb") as handle:
                for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
                    handle.write(chunk)
                    written += len(chunk)
    except httpx.HTTPError as exc:
        raise ApiError(f"download failed: {exc}") from None
    return written


def split_artifact(path: str, step: str | None) -> tuple[str, str]:
    """`step:path`, `step/path`, or `path` with --step."""
    if step:
        return step, path
    name, sep, rest = path.partition(":")
    if not sep:
        name, sep, rest = path.partition("/")
    if not sep or not name or not rest:
        raise typer.BadParameter("name the artifact as STEP:PATH (or pass --step)", param_hint="'--download'")
    return name, rest


def artifacts(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    download: Annotated[
        str | None, typer.Option("--download", metavar="PATH", help="Download one artifact: STEP:PATH.")
    ] = None,
    as_zip: Annotated[
        bool, typer.Option("--zip", help="Download every artifact (or --step's) as a ZIP.")
    ] = False,
    step: Annotated[str | None, typer.Option("--step", help="Only this step's artifacts.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to save the download.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """List a run's artifacts, download one (--download) or all of them as a ZIP (--zip)."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    console = Console()
    try:
        with ApiClient(api) as client:
            base = f"/runs/{quote(run_id, safe='')}"
            if download or as_zip:
                if download:
                    name, path = split_artifact(download, step)
                    url = _location(client, f"{base}/artifacts/{quote(name, safe='')}/{quote(path)}", {})
                    target = output or Path(path.rsplit("/", 1)[-1])
                else:
                    url = _location(client, f"{base}/artifacts.zip", {"step": step})
                    target = output or Path(f"{run_id}{'-' + step if step else ''}.zip")
                size = fetch(url, target)
                if as_json:
                    typer.echo(json.dumps({"path": str(target), "size": size}))
                else:
                    console.print(f"saved {escape(str(target))} ({_size(size)})")
                return
            listing = client.request("GET", f"{base}/artifacts")
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    rows = [a for a in listing["artifacts"] if step is None or a["step"] == step]
    if as_json:
        typer.echo(json.dumps(listing | {"artifacts": rows}, indent=2))
        return
    if not rows:
        console.print("no artifacts")
    else:
        table = Table("step", "path", "size", "type", "expires", box=None)
        for row in rows:
            expires = "[red]expired[/red]" if row["expired"] else escape(str(row.get("expires_at") or ""))
            table.add_row(row["step"], escape(row["path"]), _size(row["size"]), row["content_type"], expires)
        console.print(table)
    for name, warnings in sorted(listing.get("warnings", {}).items()):
        if step is None or name == step:
            for warning in warnings:
                console.print(f"[yellow]warning[/yellow] {escape(name)}: {escape(warning)}")


def register(app: typer.Typer) -> None:
    """Add the `artifacts` command to `app`."""
    app.command("artifacts")(artifacts)
