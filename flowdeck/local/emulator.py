"""The local AWS: moto's server with its Step Functions executor switched on.

Run as its own process (`python -m flowdeck.local.emulator --port N`) so state machine
executions, the API server and the workers don't share one interpreter lock.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading


def serve(host: str, port: int) -> None:
    # The executor calls SQS and DynamoDB at localhost:$MOTO_PORT: it must be this server.
    os.environ["MOTO_PORT"] = str(port)
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(f"emulator ready on {host}:{port}", flush=True)
    stopped.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
