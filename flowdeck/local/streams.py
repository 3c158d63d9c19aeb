"""DynamoDB Streams -> a Lambda handler, locally: what an event source mapping does on AWS.

A StreamReader reads each table's stream once (from LATEST at start) and hands every batch of records
to each consumer of that table; a StreamPoller is one consumer (one event source mapping): it calls
its handler with the Lambda DynamoDB-stream event shape, a batch at a time, in order, from its own
queue, so a consumer that is slow or retrying holds up only itself, as mappings are independent on
AWS. The emulator's GetRecords waits for a record (flowdeck.local.emulator), so a reader asks again at
once; only an empty answer that came back at once (no wait) is followed by a POLL_SECONDS pause.

A batch that fails is retried as Lambda retries one (its shard waits meanwhile): a handler that raises
gets the whole batch again; one that answers a partial batch response (`batchItemFailures`) gets the
records from its first failed one on (Lambda checkpoints before the lowest failed sequence number).
After `retry_attempts` retries the records are given up, as Lambda hands them to the mapping's
on-failure destination: logged and counted in `given_up`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from flowdeck.local.http import LocalLambdaContext
from flowdeck.local.metering import METER

Handler = Callable[[dict[str, Any], Any], Any]

POLL_SECONDS = 0.02
# An empty answer sooner than this did not wait for records (not our emulator): pause before asking again.
WAITED_SECONDS = 0.1
BATCH_SIZE = 100
# Lambda's default for a stream mapping is to retry until the records expire; ours set a number.
DEFAULT_RETRY_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 0.1
MAX_RETRY_BACKOFF_SECONDS = 2.0
REGION = "us-east-1"

logger = logging.getLogger(__name__)


def lambda_records(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """GetRecords records as the event Lambda's DynamoDB event source passes to a function."""
    return {
        "Records": [
            {
                "eventID": record.get("eventID"),
                "eventName": record["eventName"],
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": record.get("awsRegion", REGION),
                "dynamodb": record["dynamodb"],
                "eventSourceARN": stream_arn,
            }
            for record in records
        ]
    }


class StreamReader:
    """Reads the streams of the tables its consumers subscribed to, once each; start()/stop()."""

    def __init__(self, dynamodb: Any, streams: Any, poll: float = POLL_SECONDS) -> None:
        self.dynamodb = dynamodb
        self.streams = streams
        self.poll = poll
        self._queues: dict[str, list[queue.Queue[tuple[str, list[dict[str, Any]]]]]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def subscribe(self, table: str) -> queue.Queue[tuple[str, list[dict[str, Any]]]]:
        """A queue that gets every batch of the table's stream read from start() on: (stream ARN, records)."""
        batches: queue.Queue[tuple[str, list[dict[str, Any]]]] = queue.Queue()
        self._queues.setdefault(table, []).append(batches)
        return batches

    def start(self) -> None:
        """Position every subscribed stream at LATEST now (records written after this are read), then read."""
        for table, consumers in self._queues.items():
            arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
            shards = [
                s["ShardId"]
                for s in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            ]
            iterators = {shard: self._iterator(arn, shard) for shard in shards}
            for shard in shards:
                thread = threading.Thread(
                    target=self._run,
                    args=(arn, shard, iterators[shard], consumers),
                    name=f"flowdeck-stream-{table}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _iterator(self, arn: str, shard: str) -> str:
        # LATEST also after a failure: moto 5.2.5 cannot start AFTER_SEQUENCE_NUMBER (it adds 1 to a
        # string). Records skipped then still reach viewers: the next pump reads the logs table.
        answer = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")
        return str(answer["ShardIterator"])

    def _run(
        self,
        arn: str,
        shard: str,
        iterator: str,
        consumers: list[queue.Queue[tuple[str, list[dict[str, Any]]]]],
    ) -> None:
        while not self._stop.is_set():
            try:
                if not iterator:
                    iterator = self._iterator(arn, shard)
                asked = time.monotonic()
                answer = self.streams.get_records(ShardIterator=iterator, Limit=BATCH_SIZE)
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("reading stream %s failed", arn)
                iterator = ""  # iterators are single use (see the emulator): take a new one
                self._stop.wait(1)
                continue
            iterator = answer.get("NextShardIterator") or ""
            records = answer.get("Records", [])
            for consumer in consumers if records else ():
                consumer.put((arn, records))
            if not records and time.monotonic() - asked < WAITED_SECONDS:
                self._stop.wait(self.poll)


class StreamPoller:
    """One consumer of some tables' streams: feeds their records to one handler; start()/stop().

    With a shared `reader` the streams are read once for all its consumers (start the reader after
    every consumer's start()); without one, the poller reads them itself.
    """

    def __init__(
        self,
        handler: Handler,
        tables: list[str],
        dynamodb: Any,
        streams: Any,
        poll: float = POLL_SECONDS,
        name: str = "fanout",
        retry_attempts: int = DEFAULT_RETRY_ATTEMPTS,
        reader: StreamReader | None = None,
    ) -> None:
        self.handler = handler
        self.name = name
        self.retry_attempts = retry_attempts
        self.given_up = 0  # records past their retries (on AWS: the on-failure destination's)
        self.tables = tables
        self.reader = reader or StreamReader(dynamodb, streams, poll)
        self._own_reader = reader is None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Subscribe to every table's stream, and read them now when the reader is this poller's own."""
        for table in self.tables:
            batches = self.reader.subscribe(table)
            thread = threading.Thread(
                target=self._consume, args=(batches,), name=f"flowdeck-{self.name}-{table}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        if self._own_reader:
            self.reader.start()

    def stop(self) -> None:
        if self._own_reader:
            self.reader.stop()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def _consume(self, batches: queue.Queue[tuple[str, list[dict[str, Any]]]]) -> None:
        """Deliver the batches in order; those that queued up meanwhile go together (up to BATCH_SIZE)."""
        waiting: tuple[str, list[dict[str, Any]]] | None = None  # taken, but for the next delivery
        while not self._stop.is_set():
            if waiting is None:
                try:
                    waiting = batches.get(timeout=0.2)
                except queue.Empty:
                    continue
            (arn, records), waiting = waiting, None
            while len(records) < BATCH_SIZE:
                try:
                    more_arn, more = batches.get_nowait()
                except queue.Empty:
                    break
                if more_arn != arn or len(records) + len(more) > BATCH_SIZE:
                    waiting = (more_arn, more)
                    break
                records = records + more
            self._deliver(arn, records)

    def _deliver(self, arn: str, records: list[dict[str, Any]]) -> None:
        """Hand the records to the handler until it takes them all or their retries are spent."""
        for attempt in range(self.retry_attempts + 1):
            failed_from = self._invoke(arn, records)
            if failed_from is None:
                return
            records = records[failed_from:]
            if attempt < self.retry_attempts:
                METER.add(f"lambda.{self.name}.retries")
                self._stop.wait(min(RETRY_BACKOFF_SECONDS * 2**attempt, MAX_RETRY_BACKOFF_SECONDS))
                if self._stop.is_set():
                    return
        self.given_up += len(records)
        logger.error(
            "%s gave up on %d records of %s after %d retries",
            self.name,
            len(records),
            arn,
            self.retry_attempts,
        )

    def _invoke(self, arn: str, records: list[dict[str, Any]]) -> int | None:
        """Call the handler once; None when every record was taken, else the index to retry from."""
        event = lambda_records(records, arn)
        try:
            METER.add(f"lambda.{self.name}.records", len(records))
            context = LocalLambdaContext(aws_request_id=records[0].get("eventID") or "stream")
            answer = METER.invoke(self.name, self.handler, event, context)
        except Exception:
            logger.exception("stream handler %s failed on %d records of %s", self.name, len(records), arn)
            return 0
        failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
        if not failures:
            return None
        sequence = [str(r.get("dynamodb", {}).get("SequenceNumber")) for r in records]
        named = [str(f.get("itemIdentifier")) for f in failures]
        # An identifier that names no record of the batch fails it whole, as on Lambda.
        return min(sequence.index(n) for n in named) if set(named) <= set(sequence) else 0
