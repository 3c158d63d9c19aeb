"""Start and stop the embedded local stack: emulator, resources, state machines, workers, API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flowdeck import constants
from flowdeck.catalog import Catalog
from flowdeck.config import get_settings
from flowdeck.local.event_rules import install_stopped_tasks_rule
from flowdeck.local.faults import ENV_FAULTS, AwsFault, Fault, faulty_handler
from flowdeck.local.faults import dump as dump_faults
from flowdeck.local.state import LocalState, PeriodicSave, Restored
from flowdeck.local.sweeper import ArtifactSweeper, ScratchSweeper
from flowdeck.stores.fresh_tasks import family_name
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import (
    create_connections_table_kwargs,
    create_deliveries_table_kwargs,
    create_logs_table_kwargs,
    create_table_kwargs,
)
from statemachines import compile_workflow, render_definition
from statemachines.fresh_step import fresh_shapes

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
STATE_MACHINE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/flowdeck-local-state-machine"
STEPS_VISIBILITY_TIMEOUT = 60
FRESH_CLUSTER = "flowdeck-fresh"
# ECS's longest stop timeout on Fargate: a StopTask gives a runner this long before SIGKILL.
FRESH_STOP_TIMEOUT_SECONDS = 120
# A failed approval delivery comes back this soon (the notifier retries it a few times).
APPROVALS_VISIBILITY_TIMEOUT = 5
# How long stop() waits for each process after SIGTERM before SIGKILL (ECS's stopTimeout, locally).
WORKER_STOP_WAIT_SECONDS = 10


def default_data_dir(port: int) -> Path:
    """`.flowdeck/<port>/` of the current folder."""
    return Path(".flowdeck") / str(port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local AWS emulator exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the local AWS emulator did not listen on port {port} within {timeout:.0f}s")


class LocalStack:
    """Everything `flowdeck up` runs, as one object: `with LocalStack(dir) as stack: ...`."""

    def __init__(
        self,
        workflows_dir: Path,
        port: int = 8765,
        workers: int = 2,
        worker_concurrency: int = 4,
        data_dir: Path | None = None,
        fresh: bool = False,
        keep_state: bool = True,
        faults: Sequence[Fault] = (),
    ) -> None:
        self.workflows_dir = workflows_dir.resolve()
        self.catalog = Catalog.from_dir(self.workflows_dir)  # refuse bad definitions before starting anything
        self.port = port
        self.worker_count = workers
        self.worker_concurrency = worker_concurrency
        # One folder per stack: two stacks of one checkout (other ports) share no logs, scratch or state.
        self.data_dir = (data_dir or default_data_dir(port)).resolve()
        self.fresh = fresh
        # Off for throwaway stacks (tests, benches): no restore, and no saves competing for the CPU.
        self.keep_state = keep_state
        # Injected on purpose (tests, bench/faults.py); none by default (flowdeck.local.faults).
        self.faults = list(faults)
        self.state = LocalState(self.data_dir / "state", self.client)
        self.restored = Restored()
        self.interrupted: list[str] = []  # runs the previous stack left in flight, recorded failed
        self._state_loaded = False
        self.emulator_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self._outer_environ: dict[str, str] | None = None
        self.api: Any = None
        self.stream_reader: Any = None
        self.streams: Any = None
        self.run_events: Any = None
        self.gateway: Any = None
        self.env: dict[str, str] = {}
        self.workers: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.triggers: Any = None  # schedules and event rules (flowdeck.local.scheduler)
        self.approvals_queue_url = ""
        self.approvals: Any = None  # the approvals queue -> the notifier (flowdeck.local.approvals_queue)
        # The fresh cluster's stopped-task rule's queue -> its handler (lambdas.task_stopped), if any.
        self.stopped_tasks_queue_url = ""
        self.stopped_tasks: Any = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def client(self, service: str) -> Any:
        return boto3.client(
            cast(Any, service),  # boto3-stubs types clients per literal service name
            region_name=REGION,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
        )

    # -- lifecycle --------------------------------------------------------------------------
    def prepare_data_dir(self) -> None:
        """The data folder, emptied of kept state and scratch first with `fresh` (logs stay: they append)."""
        if self.fresh:
            for part in ("state", "scratch"):
                shutil.rmtree(self.data_dir / part, ignore_errors=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self) -> LocalStack:
        self.prepare_data_dir()
        try:
            self._start_emulator()
            self._bootstrap()
            if self.keep_state:
                # Before any stream poller starts: restored items are history, not changes to react to.
                self.restored = self.state.restore()
                self._state_loaded = True
            self._configure_this_process()
            for index in range(self.worker_count):
                self._start_worker(index)
            self._supervisor = threading.Thread(target=self._supervise_workers, daemon=True)
            self._supervisor.start()
            scratch = ScratchSweeper.over(
                self.data_dir / "scratch",
                RunStore(constants.RUNS_TABLE, self.client("dynamodb")),
                self.catalog,
            )
            ArtifactSweeper.over(
                self.client("s3"), self.catalog, self._stopping, self.state.uploaded_at(), scratch
            ).start()
            self._start_api()
            # After the stream pollers start: these ends free slots and close approvals as any end does.
            self.interrupted = self.state.fail_interrupted(self.restored.in_flight)
            self._start_queued()
            self._start_triggers()
            if self.keep_state:
                PeriodicSave(self.state, self._stopping).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        self._save_state()
        if self.stream_reader is not None:
            self.stream_reader.stop()
        for poller in (self.streams, self.run_events, self.approvals, self.stopped_tasks):
            if poller is not None:
                poller.stop()
        self.approvals = self.stopped_tasks = None
        self.streams = self.run_events = self.stream_reader = None
        if self.triggers is not None:
            self.triggers.stop()
            self.triggers = None
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.gateway is not None:
            self.gateway.close()
            self.gateway = None
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(WORKER_STOP_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        self._restore_this_process()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _save_state(self) -> None:
        """Save once more before the emulator goes (runs still in flight are saved as such)."""
        if not self._state_loaded:
            return  # never save over a state this stack did not load
        self._state_loaded = False
        try:
            self.state.save()
        except (BotoCoreError, ClientError, OSError) as exc:
            print(f"flowdeck: the local state was not saved: {exc}", file=sys.stderr)

    def _start_queued(self) -> None:
        """Start restored queued runs whose slots are free: an end the stopped stack never reacted to
        (its stream record was lost with the emulator) would otherwise leave them queued."""
        if not self.restored.runs:
            return
        from flowdeck.control.concurrency import ConcurrencyControl
        from flowdeck.stores.executions import Executions

        control = ConcurrencyControl(
            RunStore(constants.RUNS_TABLE, self.client("dynamodb")),
            Executions(self.env[constants.ENV_STATE_MACHINE_ARN_PREFIX], self.client("stepfunctions")),
        )
        for name, definition in self.catalog.definitions.items():
            if definition.runtime_config.concurrency.max_runs:
                try:
                    control.promote(name)  # frees the slots of finished holders first (reclaim)
                except (BotoCoreError, ClientError) as exc:
                    print(f"flowdeck: queued runs of {name} not started: {exc}", file=sys.stderr)

    # -- parts ------------------------------------------------------------------------------
    def _log(self, name: str) -> IO[bytes]:
        handle = open(self.data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def _spawn(self, args: list[str], name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self._log(name)
        # Children leave when this process is gone, however it ended (kill -9 included).
        env = env | {"FLOWDECK_EXIT_WITH_PARENT": str(os.getpid())}
        process = subprocess.Popen(  # noqa: S603 - our own modules, by the current interpreter
            [sys.executable, "-m", *args], stdout=log, stderr=log, env=env, stdin=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    def _start_emulator(self) -> None:
        # The emulator injects only the faults this stack was given, never ones left in the shell.
        env = {k: v for k, v in os.environ.items() if k != ENV_FAULTS}
        env["MOTO_PORT"] = str(self.emulator_port)
        if any(isinstance(fault, AwsFault) for fault in self.faults):
            env[ENV_FAULTS] = dump_faults(self.faults)
        process = self._spawn(["flowdeck.local.emulator", "--port", str(self.emulator_port)], "emulator", env)
        _wait_for_port(self.emulator_port, process)

    def _bootstrap(self) -> None:
        """Create what the CDK app creates on AWS, under the same names, from the same ASL."""
        ddb, sqs, s3, sfn = (self.client(s) for s in ("dynamodb", "sqs", "s3", "stepfunctions"))
        ddb.create_table(**create_table_kwargs(constants.RUNS_TABLE))
        ddb.create_table(**create_logs_table_kwargs(constants.LOGS_TABLE))
        ddb.create_table(**create_connections_table_kwargs(constants.CONNECTIONS_TABLE))
        ddb.create_table(**create_deliveries_table_kwargs(constants.DELIVERIES_TABLE))
        dlq_url = sqs.create_queue(QueueName=constants.STEPS_DLQ)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.steps_queue_url = sqs.create_queue(
            QueueName=constants.STEPS_QUEUE,
            Attributes={
                "VisibilityTimeout": str(STEPS_VISIBILITY_TIMEOUT),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
            },
        )["QueueUrl"]
        s3.create_bucket(Bucket=constants.ARTIFACTS_BUCKET)
        self._bootstrap_approvals(sqs)
        self.env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            constants.ENV_AWS_ENDPOINT_URL: self.endpoint_url,
            constants.ENV_RUNS_TABLE: constants.RUNS_TABLE,
            constants.ENV_LOGS_TABLE: constants.LOGS_TABLE,
            constants.ENV_CONNECTIONS_TABLE: constants.CONNECTIONS_TABLE,
            constants.ENV_DELIVERIES_TABLE: constants.DELIVERIES_TABLE,
            constants.ENV_WEBSOCKET_ENDPOINT: f"http://127.0.0.1:{self.port}",
            constants.ENV_STEPS_QUEUE_URL: self.steps_queue_url,
            constants.ENV_APPROVALS_QUEUE_URL: self.approvals_queue_url,
            constants.ENV_PUBLIC_API_URL: self.api_url,
            # The same server serves the dashboard at `/` (SPEC §6).
            constants.ENV_DASHBOARD_URL: self.api_url,
            constants.ENV_ARTIFACTS_BUCKET: constants.ARTIFACTS_BUCKET,
            constants.ENV_STATE_MACHINE_ARN_PREFIX: (
                f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{constants.STATE_MACHINE_PREFIX}"
            ),
            constants.ENV_WORKFLOWS_DIR: str(self.workflows_dir),
            "FLOWDECK_WORKSPACE": str(self.workflows_dir),
            "FLOWDECK_SCRATCH_DIR": str(self.data_dir / "scratch"),
            "FLOWDECK_TRUST_USER_HEADER": "true",
            constants.ENV_HANDLER_LOG: str(self.data_dir / "logs" / "handlers.log"),
            constants.ENV_FRESH_CLUSTER: FRESH_CLUSTER,
        }
        substitutions = {
            constants.ASL_RUNS_TABLE: constants.RUNS_TABLE,
            constants.ASL_STEPS_QUEUE_URL: self.steps_queue_url,
            constants.ASL_APPROVALS_QUEUE_URL: self.approvals_queue_url,
            **self._bootstrap_fresh(),
        }
        for name, definition in self.catalog.definitions.items():
            sfn.create_state_machine(
                name=constants.STATE_MACHINE_PREFIX + name,
                definition=render_definition(compile_workflow(definition), substitutions),
                roleArn=STATE_MACHINE_ROLE,
                type="STANDARD",
            )

    def _bootstrap_fresh(self) -> dict[str, str]:
        """The fresh steps' cluster and task definitions (the runner gets this stack's settings, as the
        CDK app gives them on AWS), in the default VPC; the ASL substitutions that name them."""
        shapes = fresh_shapes(list(self.catalog.definitions.values()))
        if not shapes:
            return {}
        ecs, ec2 = self.client("ecs"), self.client("ec2")
        cluster = ecs.create_cluster(clusterName=FRESH_CLUSTER)["cluster"]["clusterArn"]
        self.stopped_tasks_queue_url = install_stopped_tasks_rule(
            self.client("events"), self.client("sqs"), cluster
        )
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
        group = ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"][0]["GroupId"]
        substitutions = {
            constants.ASL_FRESH_CLUSTER: cluster,
            constants.ASL_FRESH_SUBNETS: subnets[0]["SubnetId"],
            constants.ASL_FRESH_SECURITY_GROUP: group,
            constants.ASL_FRESH_PUBLIC_IP: "DISABLED",
        }
        environment = [{"name": k, "value": v} for k, v in self.env.items()]
        for key, shape in shapes.items():
            registered = ecs.register_task_definition(
                family=family_name(key),
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu=str(shape.cpu),
                memory=str(shape.memory),
                containerDefinitions=[
                    {
                        "name": constants.FRESH_RUNNER_CONTAINER,
                        "image": "flowdeck-runner",
                        "command": ["python", "-m", "flowdeck.runner.fresh"],
                        "essential": True,
                        # moto wants a container-level size for Fargate; the task's is the step's.
                        "memory": shape.memory,
                        "stopTimeout": FRESH_STOP_TIMEOUT_SECONDS,
                        "environment": environment,
                    }
                ],
            )
            substitutions[shape.placeholder] = registered["taskDefinition"]["taskDefinitionArn"]
        return substitutions

    def _bootstrap_approvals(self, sqs: Any) -> None:
        """The approvals queue (+DLQ), the e-mail links' signing key (random) and SES's sender."""
        from flowdeck.approvals.links import LinkKey
        from flowdeck.config import Settings

        dlq_url = sqs.create_queue(QueueName=constants.APPROVALS_DLQ)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.approvals_queue_url = sqs.create_queue(
            QueueName=constants.APPROVALS_QUEUE,
            Attributes={
                # Short, so a failed delivery is retried soon (flowdeck.approvals.notifier).
                "VisibilityTimeout": str(APPROVALS_VISIBILITY_TIMEOUT),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
            },
        )["QueueUrl"]
        defaults = Settings()
        LinkKey(defaults.approval_link_secret_name, self.client("secretsmanager")).ensure()
        self.client("ses").verify_email_identity(EmailAddress=defaults.ses_sender)

    def _start_approvals(self) -> None:
        """Feed the approvals queue to the notifier handler, as Lambda's SQS event source does on AWS."""
        from flowdeck.local.approvals_queue import QueuePoller
        from lambdas import notifier

        notifier.notifier.cache_clear()
        sqs = self.client("sqs")
        self.approvals = QueuePoller(notifier.lambda_handler, self.approvals_queue_url, sqs).start()

    def _start_stopped_tasks(self) -> None:
        """Feed the fresh tasks that stopped to their handler, as the EventBridge rule does on AWS."""
        if not self.stopped_tasks_queue_url:
            return
        from flowdeck.local.approvals_queue import QueuePoller
        from flowdeck.local.event_rules import rule_target
        from lambdas import task_stopped

        task_stopped.stopped_tasks.cache_clear()
        self.stopped_tasks = QueuePoller(
            rule_target(task_stopped.lambda_handler),
            self.stopped_tasks_queue_url,
            self.client("sqs"),
            name="task-stopped",
        ).start()

    def _configure_this_process(self) -> None:
        # The API handler runs in this process and reads its settings from the environment, so one
        # process hosts one running stack at a time; stop() gives back the environment found here.
        self._outer_environ = dict(os.environ)
        os.environ.update(self.env)
        get_settings.cache_clear()

    def _restore_this_process(self) -> None:
        """The environment (and so the handlers' settings) as it was before this stack started."""
        if self._outer_environ is None:
            return
        from lambdas import deps, live_deps, notifier, task_stopped

        os.environ.clear()
        os.environ.update(self._outer_environ)
        self._outer_environ = None
        cached_services = (
            deps.run_service,
            live_deps.live_service,
            notifier.notifier,
            task_stopped.stopped_tasks,
        )
        for cached in (get_settings, *cached_services):
            cached.cache_clear()

    def _start_worker(self, index: int) -> None:
        env = (
            os.environ
            | self.env
            | {
                "FLOWDECK_WORKER_CONCURRENCY": str(self.worker_concurrency),
                # Receives are free locally; a short poll lets a stopping worker leave quickly.
                "FLOWDECK_WORKER_POLL_SECONDS": "5",
                # stop() waits this long for a worker before killing it: it hands back what it holds.
                constants.ENV_WORKER_STOP_SECONDS: str(WORKER_STOP_WAIT_SECONDS),
            }
        )
        self.workers[index] = self._spawn(["flowdeck.runner.worker"], f"worker-{index}", env)

    def _start_triggers(self) -> None:
        """Fire schedules and event rules, as EventBridge Scheduler and EventBridge do on AWS."""
        from flowdeck.local.scheduler import LocalTriggers

        prefix = self.env[constants.ENV_STATE_MACHINE_ARN_PREFIX]
        self.triggers = LocalTriggers.install(self.client, self.catalog, prefix).start()

    def _supervise_workers(self) -> None:
        """Replace a worker that died, as the ECS service does on AWS."""
        while not self._stopping.wait(0.5):
            for index, process in list(self.workers.items()):
                if process.poll() is not None and not self._stopping.is_set():
                    self.processes.remove(process)
                    self._start_worker(index)

    def _start_api(self) -> None:
        from flowdeck.local.http import ApiServer
        from lambdas import api, deps

        deps.run_service.cache_clear()  # built on first request, from the settings set above
        self.api = ApiServer(api.lambda_handler, port=self.port, routes=self._live_routes())
        self.api.start()
        self._start_streams()
        self._start_approvals()
        self._start_stopped_tasks()

    def _live_routes(self) -> list[Any]:
        """`/ws` and `@connections` for the WebSocket handler (SPEC §4), and the dashboard's files (§6)."""
        from flowdeck.local.dashboard import dashboard_routes
        from flowdeck.local.websocket import WebSocketGateway
        from lambdas import live_deps, ws

        live_deps.live_service.cache_clear()
        self.gateway = WebSocketGateway(ws.lambda_handler)
        return [*self.gateway.routes(), *dashboard_routes()]

    @property
    def dashboard_url(self) -> str:
        return f"{self.api_url}/"

    def _start_streams(self) -> None:
        """Feed the runs and logs tables' streams to their consumers, as Lambda's mappings do on AWS.

        The fan-out reads both tables; the run-events reactions read the runs table too (a second,
        independent consumer, as on AWS). Each stream is read once and handed to both.
        """
        from flowdeck.local.streams import StreamPoller, StreamReader
        from lambdas import fanout, run_events

        self.stream_reader = StreamReader(self.client("dynamodb"), self.client("dynamodbstreams"))
        self.streams = StreamPoller(
            faulty_handler(fanout.lambda_handler, "fanout", self.faults),
            [constants.RUNS_TABLE, constants.LOGS_TABLE],
            self.client("dynamodb"),
            self.client("dynamodbstreams"),
            retry_attempts=constants.FANOUT_STREAM_RETRY_ATTEMPTS,
            reader=self.stream_reader,
        )
        self.run_events = StreamPoller(
            faulty_handler(run_events.lambda_handler, "run_events", self.faults),
            [constants.RUNS_TABLE],
            self.client("dynamodb"),
            self.client("dynamodbstreams"),
            name="run_events",
            retry_attempts=constants.RUN_EVENTS_RETRY_ATTEMPTS,
            reader=self.stream_reader,
        )
        self.streams.start()
        self.run_events.start()
        self.stream_reader.start()
