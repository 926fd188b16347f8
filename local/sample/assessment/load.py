"""Seeds the caches the sample needs: relation cache (db 10), content cache (db 5), emulator content.

    .venv/bin/python local/sample/assessment/load.py

Needs ``make up``. The course's leaf nodes go to ``do_as_course_1:do_as_course_1:leafnodes``;
``do_as_quiz_1`` has ``totalQuestions`` in the content cache, ``do_as_quiz_2`` only in the
content read API of the emulator (so the job falls back to it when the count check is on).
"""

from __future__ import annotations

import json

import redis
import requests

COURSE = "do_as_course_1"

if __name__ == "__main__":
    redis.Redis(port=6379, db=10).sadd(f"{COURSE}:{COURSE}:leafnodes", "do_as_intro", "do_as_quiz_1", "do_as_quiz_2")
    redis.Redis(port=6379, db=5).set("do_as_quiz_1", json.dumps({"identifier": "do_as_quiz_1", "totalQuestions": 3}))
    requests.post("http://127.0.0.1:9000/__emulator/seed", timeout=10, json={"contents": {
        "do_as_quiz_2": {"identifier": "do_as_quiz_2", "objectType": "Content", "status": "Live",
                         "totalQuestions": 2}}}).raise_for_status()
    print("seeded relation cache, content cache and emulator for", COURSE)
