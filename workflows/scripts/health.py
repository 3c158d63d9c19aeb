"""A stand-in health check: reads the endpoint that `apply` published."""

import json
import os

endpoint = json.loads(os.environ["FLOWDECK_STEP_APPLY_OUTPUTS"])["endpoint"]
print(f"GET {endpoint} -> 200 OK")
with open(os.environ["FLOWDECK_OUTPUTS"], "w", encoding="utf-8") as out:
    json.dump({"status": 200, "summary": "200 OK"}, out)
