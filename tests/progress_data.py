"""A small course in the relation cache and an enrolment, shared by the progress pipeline and e2e tests."""

from __future__ import annotations

import redis


def seed_course(redis_port: int, cql, run_id: str) -> dict:
    """A course C with units U1 {c1, c2} and U2 {c3, opt (optional)}; learner L enrolled in batch B."""
    c = {"course": f"{run_id}-C", "u1": f"{run_id}-U1", "u2": f"{run_id}-U2", "user": f"{run_id}-L",
         "batch": f"{run_id}-B", "leaves": ["c1", "c2", "c3", "opt"]}
    r = redis.Redis(port=redis_port, db=10)
    C, U1, U2 = c["course"], c["u1"], c["u2"]
    r.sadd(f"{C}:{C}:leafnodes", "c1", "c2", "c3", "opt")
    r.sadd(f"{C}:{C}:optionalnodes", "opt")
    r.sadd(f"{C}:{U1}:leafnodes", "c1", "c2")
    r.sadd(f"{C}:{U2}:leafnodes", "c3", "opt")
    r.sadd(f"{C}:{U2}:optionalnodes", "opt")
    for leaf, unit in (("c1", U1), ("c2", U1), ("c3", U2), ("opt", U2)):
        r.sadd(f"{C}:{leaf}:ancestors", C, unit)
    cql.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active) VALUES (%s, %s, %s, 1, true)",
                (c["user"], C, c["batch"]))
    return c


def update(c, mid, contents, **edata):
    body = {"action": "batch-enrolment-update", "userId": c["user"], "courseId": c["course"], "batchId": c["batch"],
            "contents": [{"contentId": cid, "status": s} for cid, s in contents]}
    body.update(edata)
    return {"eid": "BE_JOB_REQUEST", "mid": mid, "edata": body}
