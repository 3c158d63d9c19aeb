"""A stand-in agent step: records model usage as a real agent would, one JSON line per model call.

usage: agent_step.py MODEL:INPUT:OUTPUT [MODEL:INPUT:OUTPUT ...]
Token counts are scaled by the integer input `scale` (FLOWDECK_INPUTS), to make a costlier run.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    scale = int(json.loads(os.environ.get("FLOWDECK_INPUTS", "{}")).get("scale", 1))
    with open(os.environ["FLOWDECK_USAGE"], "a", encoding="utf-8") as usage:
        for call in sys.argv[1:]:
            model, input_tokens, output_tokens = call.rsplit(":", 2)
            line = {
                "model": model,
                "input_tokens": int(input_tokens) * scale,
                "output_tokens": int(output_tokens) * scale,
            }
            usage.write(json.dumps(line) + "\n")
            usage.flush()
            print(f"{model}: {line['input_tokens']} in, {line['output_tokens']} out")
            time.sleep(0.2)
    with open(os.environ["FLOWDECK_OUTPUTS"], "w", encoding="utf-8") as outputs:
        calls = len(sys.argv) - 1
        json.dump({"summary": f"{calls} model call{'' if calls == 1 else 's'}"}, outputs)


if __name__ == "__main__":
    main()
