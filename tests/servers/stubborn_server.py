"""A launcher that behaves badly on shutdown, like some ``npx`` wrappers do.

It runs the real test server as a child (sharing our stdin/stdout), starts a second
child that never exits, prints that child's pid on stderr, ignores SIGTERM itself and
waits forever. Only a process-group-wide SIGKILL ends this tree.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

server = Path(__file__).with_name("test_server.py")
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, str(server)])
sleeper = subprocess.Popen(
    [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)",
    ],
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,
)
while True:
    time.sleep(1)
