"""Creates the Kafka topics of all nine jobs, idempotently.

    python local/topics.py [--env local] [--bootstrap 127.0.0.1:9092] [--partitions 1]

Topic names come from local/topics.txt (reference names without the env prefix); each is created
as ``<env>.<name>``, the way the reference deployment names them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOPICS = Path(__file__).resolve().parent / "topics.txt"


def topic_names(text: str, env: str) -> list[str]:
    names = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(f"{env}.{name}")
    return sorted(set(names))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", default=os.environ.get("JOB_ENV", "local"))
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=1)
    a = ap.parse_args()

    from confluent_kafka.admin import AdminClient, NewTopic  # venv-only dependency

    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    existing = set(admin.list_topics(timeout=30).topics)
    wanted = [t for t in topic_names(TOPICS.read_text(), a.env) if t not in existing]
    if wanted:
        futures = admin.create_topics([NewTopic(t, a.partitions, 1) for t in wanted], operation_timeout=30)
        for name, fut in futures.items():
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001
                if "TOPIC_ALREADY_EXISTS" not in str(e):
                    print(f"[topics] {name}: {e}", file=sys.stderr)
                    return 2
    print(f"[topics] {len(wanted)} created, {len(existing & set(topic_names(TOPICS.read_text(), a.env)))} existed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
