"""Every e-mail the notifier sent, kept in the runs table (local stack only) so it can be printed.

`flowdeck inbox --emails` and the e2e tests read the links from here. On AWS the outbox is off: the
links are bearer credentials and belong in the approver's mailbox only.
"""

from __future__ import annotations

import time
from typing import Any

from flowdeck.constants import PK, SK, TTL_ATTRIBUTE
from flowdeck.stores.items import from_item, to_attribute

OUTBOX_PK = "OUTBOX"
KEEP_SECONDS = 7 * 24 * 3600


class Outbox:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def keep(self, email: dict[str, Any]) -> None:
        sort = f"{email['sent_at']}#{email['run_id']}#{email['step']}#{email['to']}"
        item = {
            PK: {"S": OUTBOX_PK},
            SK: {"S": sort},
            "email": to_attribute(email),
            TTL_ATTRIBUTE: {"N": str(int(time.time()) + KEEP_SECONDS)},
        }
        self.client.put_item(TableName=self.table, Item=item)

    def emails(self, run_id: str | None = None, to: str | None = None) -> list[dict[str, Any]]:
        """Sent e-mails, oldest first, optionally of one run and/or one recipient."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": OUTBOX_PK}},
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            found += [from_item(i)["email"] for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [
            e
            for e in found
            if (run_id is None or e.get("run_id") == run_id) and (to is None or e.get("to") == to)
        ]
