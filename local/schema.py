"""Applies local/schema.cql to the local Cassandra, idempotently.

    python local/schema.py [--check] [--host 127.0.0.1] [--port 9042] [--file F.cql ...]

``--check`` only tells whether Cassandra accepts CQL (exit 0) so ``stack.py`` can wait on it.
Statements end with ``;`` at the end of a line; ``--`` lines are comments.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The reference tables, then the smoke job's own table.
SCHEMA_FILES = [HERE / "schema.cql", HERE / "smoke.cql"]


def statements(text: str) -> list[str]:
    """Splits a CQL file into statements; only whole-line ``--`` comments are supported."""
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    out, cur = [], []
    for ln in lines:
        cur.append(ln)
        if ln.rstrip().endswith(";"):
            stmt = "\n".join(cur).strip().rstrip(";").strip()
            if stmt:
                out.append(stmt)
            cur = []
    if "".join(cur).strip():
        out.append("\n".join(cur).strip())
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--file", type=Path, nargs="+", default=SCHEMA_FILES)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()

    from cassandra.cluster import Cluster  # venv-only dependency

    cluster = Cluster([a.host], port=a.port, connect_timeout=5, control_connection_timeout=5)
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=5)
        if a.check:
            return 0
        t0 = time.monotonic()
        for f in a.file:
            stmts = statements(f.read_text())
            for stmt in stmts:
                session.execute(stmt, timeout=60)
            print(f"[schema] applied {len(stmts)} statements from {f.name} in {time.monotonic() - t0:.1f}s")
        return 0
    except Exception as e:  # noqa: BLE001 - --check turns any failure into "not ready"
        if a.check:
            return 1
        print(f"[schema] failed: {e}", file=sys.stderr)
        return 2
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
