"""The observer's entry point ends a fatal error as one JSON log line and a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

from streamwatch_dev.services import service_env


def test_a_fatal_error_is_one_json_line_and_exit_code_1() -> None:
    # A real fatal error at start: the ops port is taken by another process's socket.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = service_env(
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
            ELASTICSEARCH_URL="http://127.0.0.1:9",
            OPS_HOST="127.0.0.1",
            OPS_PORT=str(port),
        )
        script = shutil.which("streamwatch-observer", path=os.path.dirname(sys.executable))
        assert script is not None
        done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # every line is one JSON object
    (fatal,) = [line for line in lines if line["level"] == "ERROR"]
    assert fatal["event"] == "observer_failed" and fatal["service"] == "observer"
    assert "Address already in use" in fatal["error"] and "Traceback" in fatal["exception"]
