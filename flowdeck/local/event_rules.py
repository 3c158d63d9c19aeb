"""The local stack's event triggers: EventBridge rules whose matches start runs, as on AWS.

On AWS each `triggers[].event` is a rule whose target is the workflow's state machine. moto's
EventBridge (5.2.5) delivers to SQS, CloudWatch Logs and event buses but not to Step Functions, so
locally the rule (same pattern, same input transformer, `flowdeck.triggers.events`) targets a queue
of its own, and this poller starts the state machine with each message as the execution input. The
execution name is fixed per (workflow, trigger, event id), so a redelivered message starts one run
(on AWS EventBridge names executions itself). A run it starts is recorded in the trigger history by
the run-events reaction, as on AWS (`flowdeck.triggers.deliveries.record_trigger_starts`); the poller
records only the messages that started no run (`duplicate`, `refused`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.catalog import Catalog
from flowdeck.control.stopped_tasks import stopped_tasks_pattern
from flowdeck.control.workflow_state import WorkflowStates
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.executions import Executions
from flowdeck.triggers import events

log = logging.getLogger("flowdeck.event_rules")

POLL_EVERY_SECONDS = 0.2
# EventBridge rule names are at most 64 characters (queue names 80): long workflow names are cut.
_MAX_NAME = 64


def local_name(workflow: str, trigger_index: int) -> str:
    """The local rule's (and its queue's) name: readable, unique per (workflow, trigger)."""
    name = f"flowdeck-{workflow}-event{trigger_index}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{workflow}\0{trigger_index}".encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}-{digest}"


@dataclass(frozen=True)
class RuleQueue:
    """One event trigger's local rule and the queue its matches land in."""

    workflow: str
    trigger_index: int
    rule: str
    queue_url: str


def install_rules(events_client: Any, sqs: Any, catalog: Catalog) -> list[RuleQueue]:
    """Create one rule (default bus) and queue per event trigger; what the CDK app creates on AWS."""
    installed = []
    for workflow, definition in sorted(catalog.definitions.items()):
        for index, trigger in events.event_triggers(definition):
            name = local_name(workflow, index)
            queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            events_client.put_rule(Name=name, EventPattern=json.dumps(trigger.pattern), State="ENABLED")
            events_client.put_targets(
                Rule=name,
                Targets=[
                    {
                        "Id": "start-run",
                        "Arn": queue_arn,
                        "InputTransformer": {
                            "InputPathsMap": events.input_paths(definition),
                            "InputTemplate": events.input_template(definition, trigger),
                        },
                    }
                ],
            )
            installed.append(RuleQueue(workflow, index, name, queue_url))
    return installed


# The fresh tasks' stopped-task rule (stacks/fresh.py on AWS) and its local queue.
STOPPED_TASKS_RULE = "flowdeck-fresh-task-stopped"


def install_stopped_tasks_rule(events_client: Any, sqs: Any, cluster_arn: str) -> str:
    """The rule on the fresh cluster's stopped tasks, into a queue of its own (moto's EventBridge
    does not invoke Lambda functions); the queue's URL."""
    queue_url = sqs.create_queue(QueueName=STOPPED_TASKS_RULE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = json.dumps(stopped_tasks_pattern(cluster_arn))
    events_client.put_rule(Name=STOPPED_TASKS_RULE, EventPattern=pattern, State="ENABLED")
    events_client.put_targets(Rule=STOPPED_TASKS_RULE, Targets=[{"Id": "task-stopped", "Arn": queue_arn}])
    return queue_url


def rule_target(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """A Lambda function that an EventBridge rule targets, fed from the rule's local queue: each
    message is one event, passed as EventBridge passes it."""

    def from_queue(sqs_event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in sqs_event.get("Records", []):
            handler(json.loads(record["body"]), context)
        return {}

    return from_queue


class EventRulePoller:
    """Starts a run for every message the local rules put in their queues."""

    def __init__(
        self,
        rules: list[RuleQueue],
        sqs: Any,
        executions: Executions,
        deliveries: Deliveries,
        every: float = POLL_EVERY_SECONDS,
        states: WorkflowStates | None = None,
    ) -> None:
        """`states`: events for paused workflows start nothing and are recorded `refused`."""
        self.rules = rules
        self.states = states
        self.sqs = sqs
        self.executions = executions
        self.deliveries = deliveries
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> EventRulePoller:
        if self.rules:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="event-rules")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            for rule in self.rules:
                try:
                    self.poll(rule)
                except (BotoCoreError, ClientError) as exc:
                    log.warning("polling %s failed: %s", rule.rule, exc)

    def poll(self, rule: RuleQueue) -> list[str]:
        """Start the runs of the messages waiting in one rule's queue; their run ids."""
        answer = self.sqs.receive_message(QueueUrl=rule.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        run_ids = []
        for message in answer.get("Messages", []):
            if (run_id := self._start(rule, message["Body"])) is not None:
                run_ids.append(run_id)
            # Deleted once started (or refused for good); a failed start stays for another try.
            self.sqs.delete_message(QueueUrl=rule.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return run_ids

    def _start(self, rule: RuleQueue, body: str) -> str | None:
        try:
            execution_input = json.loads(body)
            event_id = str(execution_input["event_id"])
            source = str(execution_input["started_by"])
        except (ValueError, KeyError, TypeError):
            self._record(rule, "unreadable", "refused", reason="the rule's message is not an execution input")
            return None
        kind = "incident" if execution_input.get("trigger") == "incident" else "event"
        # As on AWS, where a paused workflow's rule is disabled: the event starts nothing.
        paused = self.states.refusal(rule.workflow) if self.states is not None else None
        if paused is not None:
            self._record(rule, event_id, "refused", reason=paused.message, source=source, kind=kind)
            return None
        seen = self.deliveries.first_seen(rule.workflow, "event", event_id)
        run_id = events.event_run_id(rule.workflow, rule.trigger_index, event_id, seen)
        if not self.executions.start(rule.workflow, run_id, execution_input):
            # Filed under the run's trigger (event or incident), as the reaction files its start.
            self._record(rule, event_id, "duplicate", run_id=run_id, source=source, kind=kind)
        return run_id

    def _record(
        self, rule: RuleQueue, delivery_id: str, outcome: str, kind: str = "event", **details: Any
    ) -> None:
        try:
            self.deliveries.record(rule.workflow, kind, delivery_id, outcome, **details)
        except (BotoCoreError, ClientError) as exc:  # the history explains; it must not lose the run
            log.warning("could not record event %s of %s: %s", delivery_id, rule.workflow, exc)
