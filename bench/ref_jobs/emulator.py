"""A private instance of the project's Sunbird emulator (local/emulator/sunbird.py, unchanged) for the
certificate benchmark, optionally with TCP_NODELAY on its connections.

    .venv/bin/python bench/ref_jobs/emulator.py --port 9100 [--nodelay]

Why: the stack's emulator answers keep-alive requests with the headers and the body in two sends
and Nagle's algorithm on, so every request of a keep-alive client (Unirest in the reference,
requests in lern-beam) waits ~40 ms for the client's delayed ACK (measured: 44 ms per request on a
kept-alive connection, 3 ms on a new one). A certificate costs 5 HTTP calls in both systems, so on
the stack's emulator both are bound by that stall. ``--nodelay`` removes it, so the benchmark also
shows the systems' own per-certificate cost. A private instance also keeps the benchmark's
thousands of recorded requests and RC records out of the shared emulator. Seeded like the stack's
(local/emulator/seed.json: the RC public key).
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--nodelay", action="store_true", help="TCP_NODELAY on every accepted connection")
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("sunbird_emulator", ROOT / "local" / "emulator" / "sunbird.py")
    emu = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = emu  # dataclasses look their module up while the file executes
    spec.loader.exec_module(emu)
    if a.nodelay:
        setup = emu._Handler.setup

        def setup_nodelay(self) -> None:
            setup(self)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        emu._Handler.setup = setup_nodelay
    return emu.main(["--host", "127.0.0.1", "--port", str(a.port),
                     "--seed", str(ROOT / "local" / "emulator" / "seed.json")])


if __name__ == "__main__":
    sys.exit(main())
