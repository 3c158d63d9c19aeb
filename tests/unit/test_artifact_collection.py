"""Artifact collection, key layout, the streaming ZIP writer and the local sweeper (no network)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowdeck.local.sweeper import ArtifactSweeper
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.artifacts import collect, content_type, wanted
from flowdeck.runner.process import prepare_scratch
from flowdeck.stores.artifacts import (
    MultipartSink,
    artifact_key,
    is_expired,
    is_text,
    outputs_key,
    write_zip,
    zip_key,
)

MiB = 1024 * 1024


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An attempt's work dir, linked to a workspace holding scripts and a report the step did not make."""
    workspace = tmp_path / "workspace"
    (workspace / "scripts").mkdir(parents=True)
    (workspace / "scripts" / "plan.sh").write_text("echo plan\n")
    (workspace / "notes.txt").write_text("input\n")
    message = StepMessage(token="t", run_id="r1", workflow="wf", step="build", spec=StepSpec())
    scratch = prepare_scratch(tmp_path / "scratch", message, workspace)
    return scratch / "work"


def test_work_dir_links_the_workspace_entries_so_relative_scripts_resolve(work: Path) -> None:
    assert (work / "scripts").is_symlink()
    assert (work / "scripts" / "plan.sh").read_text() == "echo plan\n"
    assert (work / "notes.txt").is_symlink()


def test_collect_finds_files_matching_globs_and_whole_folders(work: Path) -> None:
    (work / "reports").mkdir()
    (work / "reports" / "junit.xml").write_text("<testsuite/>")
    (work / "reports" / "deep").mkdir()
    (work / "reports" / "deep" / "x.txt").write_text("x")
    (work / "tfplan").write_bytes(b"\x00plan")

    found = collect(work, ["tfplan", "reports/*.xml", "reports/deep"])

    assert [relative for _, relative in found.files] == ["tfplan", "reports/junit.xml", "reports/deep/x.txt"]
    assert found.warnings == []


def test_a_glob_matching_nothing_is_a_warning_not_an_error(work: Path) -> None:
    found = collect(work, ["coverage/*.xml"])

    assert found.files == []
    assert found.warnings == ["no file matches 'coverage/*.xml'"]


def test_paths_escaping_the_work_dir_are_refused(work: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    (work / "leak.txt").symlink_to(secret)

    found = collect(work, ["../secret.txt", "/etc/hostname", "leak.txt"])

    assert found.files == []
    assert found.warnings == [
        "refused '../secret.txt': it points outside the work dir",
        "refused '/etc/hostname': it points outside the work dir",
        "refused 'leak.txt': it resolves outside the work dir",
    ]


def test_workspace_files_reached_through_the_links_are_inputs_not_uploaded(
    work: Path, tmp_path: Path
) -> None:
    (work / "out.txt").write_text("made by the step")

    found = collect(work, ["*.txt", "scripts/*"], tmp_path / "workspace")

    assert [relative for _, relative in found.files] == ["out.txt"]
    assert found.warnings == ["no file matches 'scripts/*'"]


def test_artifact_keys_sit_under_the_workflow_prefix_its_lifecycle_rule_expires() -> None:
    assert artifact_key("deploy", "r1", "plan", "out/tfplan") == "runs/deploy/r1/plan/out/tfplan"
    assert outputs_key("deploy", "r1", "plan") == "runs/deploy/r1/plan/.flowdeck/outputs.json"
    assert zip_key("deploy", "r1", ["b", "a"]) == zip_key("deploy", "r1", ["a", "b"])
    assert zip_key("deploy", "r1", ["a"]).startswith("runs/deploy/r1/.flowdeck/zips/")


def test_expiry_is_read_from_each_artifact_record() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_expired({"expires_at": "2025-12-31T23:00:00+00:00"}, now)
    assert not is_expired({"expires_at": "2026-01-01T01:00:00+00:00"}, now)
    assert not is_expired({}, now)


@pytest.mark.parametrize(
    ("path", "sample", "text"),
    [
        ("reports/junit.xml", b"<x/>", True),
        ("log.txt", b"hello", True),
        ("data.json", b"{}", True),
        ("tfplan", b"plan with words", True),
        ("tfplan", b"\x00\x01binary", False),
        ("image.png", b"\x89PNG", False),
    ],
)
def test_text_detection_for_previews(path: str, sample: bytes, text: bool) -> None:
    assert is_text(content_type(path), sample) is text


def test_a_download_of_a_folder_takes_every_file_under_it() -> None:
    records = [{"path": "out/a"}, {"path": "out/b/c"}, {"path": "outside"}]
    assert wanted(records, "out") == records[:2]
    assert wanted(records, "outside") == [records[2]]


class FakeMultipartS3:
    """Keeps uploaded parts; records the largest part it was handed."""

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}
        self.completed = False
        self.aborted = False

    def create_multipart_upload(self, **_: Any) -> dict[str, str]:
        return {"UploadId": "u1"}

    def upload_part(self, PartNumber: int, Body: bytes, **_: Any) -> dict[str, str]:
        self.parts[PartNumber] = Body
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, MultipartUpload: dict[str, Any], **_: Any) -> None:
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == sorted(self.parts)
        self.completed = True

    def abort_multipart_upload(self, **_: Any) -> None:
        self.aborted = True

    def body(self) -> bytes:
        return b"".join(self.parts[n] for n in sorted(self.parts))


def _random_chunks(seed: int, size: int, chunk: int = MiB) -> Iterator[bytes]:
    """Incompressible bytes, generated a chunk at a time (never whole in memory)."""
    block = hashlib.sha256(str(seed).encode()).digest()
    for start in range(0, size, chunk):
        yield os.urandom(min(chunk, size - start)) if seed >= 0 else block


def test_zip_writer_memory_is_bounded_by_the_part_size_not_the_archive() -> None:
    s3 = FakeMultipartS3()
    part = 5 * MiB
    sink = MultipartSink(s3, "bucket", "k.zip", part_size=part)
    total = 40 * MiB
    entries = [(f"step/file-{n}.bin", _random_chunks(n, total // 4)) for n in range(4)]

    tracemalloc.start()
    write_zip(sink, entries)
    sink.complete()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The fake keeps every part (the archive itself); only what the writer holds on top must be bounded.
    held = peak - sum(len(p) for p in s3.parts.values())

    assert s3.completed
    assert all(len(p) == part for n, p in s3.parts.items() if n < max(s3.parts))
    assert held < 3 * part, f"the writer held {held / MiB:.1f} MiB beyond the uploaded parts"
    archive = zipfile.ZipFile(io.BytesIO(s3.body()))
    assert archive.namelist() == [f"step/file-{n}.bin" for n in range(4)]
    assert archive.testzip() is None
    assert sum(i.file_size for i in archive.infolist()) == total


def test_a_failed_zip_aborts_its_multipart_upload() -> None:
    s3 = FakeMultipartS3()

    def broken() -> Iterator[bytes]:
        yield b"start"
        raise OSError("source gone")

    from flowdeck.stores.artifacts import ArtifactStore

    store = ArtifactStore("bucket", s3)
    store.chunks = lambda key, chunk=0: broken()  # type: ignore[method-assign]
    with pytest.raises(OSError, match="source gone"):
        store.build_zip("k.zip", [("a", "src")])

    assert s3.aborted and not s3.completed


class FakeListing:
    def __init__(self, objects: dict[str, datetime]) -> None:
        self.objects = objects
        self.deleted: list[str] = []

    def list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        for key, modified in self.objects.items():
            if key.startswith(prefix):
                yield {"Key": key, "LastModified": modified, "Size": 1}

    def delete_keys(self, keys: list[str]) -> None:
        self.deleted += keys


def test_local_sweeper_deletes_objects_past_their_workflows_retention() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    listing = FakeListing(
        {
            "runs/short/r1/a/x": now - timedelta(hours=6),  # retention 5 h: gone
            "runs/short/r2/a/x": now - timedelta(hours=1),
            "runs/long/r3/a/x": now - timedelta(hours=30),  # retention 36 h: kept
            "runs/unknown/r4/a/x": now - timedelta(hours=25),  # default 24 h: gone
        }
    )
    sweeper = ArtifactSweeper(listing, {"short": 5, "long": 36}, threading.Event())  # type: ignore[arg-type]

    assert sweeper.sweep(now) == ["runs/short/r1/a/x", "runs/unknown/r4/a/x"]
    assert listing.deleted == ["runs/short/r1/a/x", "runs/unknown/r4/a/x"]
