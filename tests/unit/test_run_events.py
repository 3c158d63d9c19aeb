"""RunEvents: RUN item changes reach every reaction; other items and removals do not."""

from __future__ import annotations

from typing import Any

from flowdeck.runs.events import RunEvents


def record(sk: str, new: dict[str, Any] | None, old: dict[str, Any] | None = None, name: str = "MODIFY"):
    change: dict[str, Any] = {"Keys": {"pk": {"S": "r1"}, "sk": {"S": sk}}}
    if new is not None:
        change["NewImage"] = {"pk": {"S": "r1"}, "sk": {"S": sk}} | {k: {"S": v} for k, v in new.items()}
    if old is not None:
        change["OldImage"] = {"pk": {"S": "r1"}, "sk": {"S": sk}} | {k: {"S": v} for k, v in old.items()}
    return {"eventName": name, "dynamodb": change}


def test_run_changes_reach_each_reaction_with_old_and_new_images() -> None:
    seen: list[tuple[Any, Any]] = []
    events = RunEvents([lambda old, new: seen.append((old, new)), lambda old, new: seen.append(("2", new))])
    events.handle(record("RUN", {"status": "succeeded"}, {"status": "running"}))
    events.handle(record("RUN", {"status": "running"}, name="INSERT"))
    assert seen[0][0]["status"] == "running" and seen[0][1]["status"] == "succeeded"
    assert seen[1] == ("2", seen[0][1])
    assert seen[2][0] is None and seen[2][1]["status"] == "running"


def test_step_items_and_removals_are_ignored() -> None:
    seen: list[Any] = []
    events = RunEvents([lambda old, new: seen.append(new)])
    events.handle(record("STEP#plan", {"status": "running"}))
    events.handle(record("RUN", None, {"status": "running"}, name="REMOVE"))
    assert seen == []


def test_step_changes_reach_only_the_step_reactions() -> None:
    runs: list[Any] = []
    steps: list[tuple[Any, Any]] = []
    events = RunEvents([lambda old, new: runs.append(new)], [lambda old, new: steps.append((old, new))])

    events.handle(record("STEP#plan", {"status": "cancelled"}, {"status": "running"}))
    events.handle(record("RUN", {"status": "running"}))
    events.handle(record("STEP#plan", None, {"status": "running"}, name="REMOVE"))
    events.handle(record("OUTPUTS", {"status": "x"}))

    assert [(old["status"], new["status"], new["sk"]) for old, new in steps] == [
        ("running", "cancelled", "STEP#plan")
    ]
    assert [new["sk"] for new in runs] == ["RUN"]
