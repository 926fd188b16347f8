"""Loads the sample hierarchies into Cassandra for a manual run of relation-cache-updater.

    .venv/bin/python local/sample/relation-cache/load.py [--keyspace dev_hierarchy_store] [--prefix P]

Every ``hierarchy-<identifier>.json`` here becomes one ``content_hierarchy`` row (JSON compacted).
``--prefix`` rewrites every ``do_rc_`` id to ``<prefix>_do_rc_`` (tests use it to get their own ids).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sample_hierarchies(prefix: str | None = None) -> dict[str, str]:
    """identifier -> hierarchy JSON text, ids optionally prefixed."""
    out = {}
    for path in sorted(HERE.glob("hierarchy-*.json")):
        text = json.dumps(json.loads(path.read_text()), separators=(",", ":"), ensure_ascii=False)
        ident = path.stem.removeprefix("hierarchy-")
        if prefix:
            text = text.replace('"do_rc_', f'"{prefix}_do_rc_')
            ident = f"{prefix}_{ident}"
        out[ident] = text
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--keyspace", default="dev_hierarchy_store")
    ap.add_argument("--table", default="content_hierarchy")
    ap.add_argument("--prefix", default=None)
    a = ap.parse_args()

    from cassandra.cluster import Cluster  # venv-only dependency

    cluster = Cluster([a.host], port=a.port)
    try:
        session = cluster.connect(a.keyspace)
        insert = session.prepare(f"INSERT INTO {a.table} (identifier, hierarchy) VALUES (?, ?)")
        rows = sample_hierarchies(a.prefix)
        for ident, text in rows.items():
            session.execute(insert, (ident, text))
        print(f"[sample] {len(rows)} hierarchies loaded into {a.keyspace}.{a.table}: {', '.join(rows)}")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
