"""Writes the invented sample batch-assess events of docs/assessment.md to events.jsonl.

    .venv/bin/python local/sample/assessment/make_events.py

Course ``do_as_course_1`` (batch ``as_batch_1``) has two assessment contents: ``do_as_quiz_1``
(3 questions) and ``do_as_quiz_2`` (2 questions). Learner ``as_learner_1`` answers quiz 1
twice in one attempt (changes q2 to a wrong answer), then makes a second, better attempt; learner
``as_learner_2`` takes quiz 2. Then: a recompute request (no events), an event for a content
outside the course, an event without ``attemptId`` and a malformed line.
"""

from __future__ import annotations

import json
from pathlib import Path

COURSE, BATCH = "do_as_course_1", "as_batch_1"
T0 = 1_700_000_000_000


def assess(user: str, content: str, qid: str, ets: int, score: float, maxscore: float = 1.0,
           answer: str = "1") -> dict:
    return {"eid": "ASSESS", "ets": ets, "ver": "3.1", "mid": f"ASSESS:{user}:{qid}:{ets}",
            "actor": {"id": user, "type": "User"},
            "context": {"channel": "as_channel", "env": "contentplayer",
                        "pdata": {"id": "local.sunbird.portal", "ver": "5.0", "pid": "contentplayer"},
                        "cdata": [{"id": COURSE, "type": "course"}, {"id": BATCH, "type": "batch"}]},
            "object": {"id": content, "type": "Content", "ver": "1"},
            "edata": {"item": {"id": qid, "maxscore": maxscore, "type": "mcq", "exlength": 0,
                               "params": [{"1": json.dumps({"text": "Option A"})}, {"answer": {"correct": ["1"]}}],
                               "uri": "", "title": f"Question {qid}?", "mmc": [], "mc": [], "desc": ""},
                      "index": 1, "pass": "Yes" if score else "No", "score": score,
                      "resvalues": [{answer: json.dumps({"text": f"Option {answer}"})}], "duration": 7}}


def attempt(user: str, content: str, attempt_id: str, ts: int, answers: list[tuple]) -> dict:
    return {"assessmentTs": ts, "batchId": BATCH, "courseId": COURSE, "userId": user, "attemptId": attempt_id,
            "contentId": content, "events": [assess(user, content, *a) for a in answers]}


def events() -> list:
    return [
        attempt("as_learner_1", "do_as_quiz_1", "as_attempt_1", T0 + 60_000,
                [("q1", T0 + 10_000, 1), ("q2", T0 + 20_000, 1), ("q3", T0 + 30_000, 1),
                 ("q2", T0 + 40_000, 0, 1.0, "2")]),
        attempt("as_learner_1", "do_as_quiz_1", "as_attempt_2", T0 + 3_600_000,
                [("q1", T0 + 3_500_000, 1), ("q2", T0 + 3_510_000, 1), ("q3", T0 + 3_520_000, 1)]),
        attempt("as_learner_2", "do_as_quiz_2", "as_attempt_3", T0 + 120_000,
                [("q4", T0 + 100_000, 0.5, 2.0), ("q5", T0 + 110_000, 2, 2.0)]),
        {"batchId": BATCH, "courseId": COURSE, "userId": "as_learner_2", "contentId": "do_as_quiz_2", "events": []},
        attempt("as_learner_2", "do_not_in_course", "as_attempt_4", T0 + 130_000, [("q9", T0 + 125_000, 1)]),
        {k: v for k, v in attempt("as_learner_2", "do_as_quiz_2", "x", T0, [("q4", T0, 1)]).items()
         if k != "attemptId"},
        "{this is not json",
    ]


if __name__ == "__main__":
    out = Path(__file__).with_name("events.jsonl")
    out.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events()))
    print(f"wrote {out}")
