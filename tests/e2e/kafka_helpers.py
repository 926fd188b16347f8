"""Kafka helpers for e2e tests: real topics on the local broker, read and written with confluent-kafka."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

BOOTSTRAP = "127.0.0.1:9092"


def create_topics(*names: str) -> None:
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})  # must outlive its futures
    for f in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(timeout=30)


def produce(topic: str, payloads: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    for v in payloads:
        p.produce(topic, v)
    assert p.flush(30) == 0


def consume_all(topic: str, expected: int, timeout: float = 30) -> list[tuple[bytes | None, bytes]]:
    # A fresh group each call: every call reads the topic from the start.
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"check-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < expected:
            m = c.poll(0.5)
            if m is not None and not m.error():
                out.append((m.key(), m.value()))
        # A little longer, to catch records beyond what was expected (double delivery).
        end = time.monotonic() + 2
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append((m.key(), m.value()))
    finally:
        c.close()
    return out


def committed_offset(group: str, topic: str) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    res = admin.list_consumer_group_offsets([req])[group].result(timeout=10)
    return res.topic_partitions[0].offset
