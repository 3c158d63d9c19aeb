"""DynamoDB Streams -> a Lambda handler, locally: what an event source mapping does on AWS.

One thread per stream reads the emulator's records (from LATEST at start) and calls the handler with
the Lambda DynamoDB-stream event shape, a batch at a time, in order. The emulator's GetRecords waits
for a record (flowdeck.local.emulator), so a reader asks again at once; only an empty answer that
came back at once (no wait) is followed by a POLL_SECONDS pause.
"""

from __future__ import annotations

import logging
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


class StreamPoller:
    """Polls the streams of some tables and feeds their records to one handler; start()/stop()."""

    def __init__(
        self,
        handler: Handler,
        tables: list[str],
        dynamodb: Any,
        streams: Any,
        poll: float = POLL_SECONDS,
        name: str = "fanout",
    ) -> None:
        self.handler = handler
        self.name = name
        self.tables = tables
        self.dynamodb = dynamodb
        self.streams = streams
        self.poll = poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Position every stream at LATEST now (records written after this are delivered), then poll."""
        for table in self.tables:
            arn = self.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
            shards = [
                s["ShardId"]
                for s in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
            ]
            iterators = {shard: self._iterator(arn, shard) for shard in shards}
            for shard in shards:
                thread = threading.Thread(
                    target=self._run,
                    args=(arn, shard, iterators[shard]),
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

    def _run(self, arn: str, shard: str, iterator: str) -> None:
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
            if records:
                self._deliver(arn, records)
            if not records and time.monotonic() - asked < WAITED_SECONDS:
                self._stop.wait(self.poll)

    def _deliver(self, arn: str, records: list[dict[str, Any]]) -> None:
        event = lambda_records(records, arn)
        # Lambda retries a failed batch; locally we log it and go on (a viewer can resubscribe).
        try:
            METER.add(f"lambda.{self.name}.records", len(records))
            context = LocalLambdaContext(aws_request_id=records[0].get("eventID") or "stream")
            METER.invoke(self.name, self.handler, event, context)
        except Exception:
            logger.exception("stream handler failed on %d records of %s", len(records), arn)
