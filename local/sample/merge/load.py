"""Seeds two sample accounts for a manual run of merge-user-courses (invented data).

    .venv/bin/python local/sample/merge/load.py [--reset]

``mg-user-from`` and ``mg-user-to`` share batch ``do_mg_batch_1`` of course ``do_mg_course_1``
(both consumed ``do_mg_res_1``); only ``mg-user-from`` is in ``do_mg_batch_2`` of
``do_mg_course_2`` (with a completed enrolment, a certificate and an assessment attempt).
``--reset`` first deletes both accounts' rows and the merge's journal and done-marker
(Redis db 3), so the merge can be demonstrated again.
"""

from __future__ import annotations

import argparse
from datetime import datetime

F, T = "mg-user-from", "mg-user-to"
C1, C2, B1, B2 = "do_mg_course_1", "do_mg_course_2", "do_mg_batch_1", "do_mg_batch_2"

ROWS = {
    "user_content_consumption": [
        {"userid": F, "courseid": C1, "batchid": B1, "contentid": "do_mg_res_1", "status": 2, "progress": 100,
         "viewcount": 2, "completedcount": 1, "lastaccesstime": "2023-05-02 10:00:00:000+0000"},
        {"userid": F, "courseid": C2, "batchid": B2, "contentid": "do_mg_res_2", "status": 2, "progress": 100,
         "viewcount": 1, "completedcount": 1, "lastaccesstime": "2023-04-01 09:00:00:000+0000"},
        {"userid": T, "courseid": C1, "batchid": B1, "contentid": "do_mg_res_1", "status": 1, "progress": 30,
         "viewcount": 1, "completedcount": 0, "lastaccesstime": "2023-05-01 08:00:00:000+0530"},
    ],
    "user_enrolments": [
        {"userid": F, "courseid": C1, "batchid": B1, "status": 1, "progress": 1, "active": True},
        {"userid": F, "courseid": C2, "batchid": B2, "status": 2, "progress": 1, "active": True,
         "completedon": datetime(2023, 4, 1, 9), "contentstatus": {"do_mg_res_2": 2},
         "issued_certificates": [{"name": "Sample certificate", "id": "mg-cert-1"}]},
        {"userid": T, "courseid": C1, "batchid": B1, "status": 1, "progress": 0, "active": True},
    ],
    "user_activity_agg": [
        {"activity_type": "Course", "activity_id": C1, "user_id": F, "context_id": f"cb:{B1}",
         "aggregates": {"completedCount": 1.0}},
        {"activity_type": "Course", "activity_id": C2, "user_id": F, "context_id": f"cb:{B2}",
         "aggregates": {"completedCount": 1.0}},
        {"activity_type": "Course", "activity_id": C1, "user_id": T, "context_id": f"cb:{B1}",
         "aggregates": {"completedCount": 0.0, "score:do_mg_assess_1": 1.0}},
    ],
    "assessment_aggregator": [
        {"user_id": F, "course_id": C2, "batch_id": B2, "content_id": "do_mg_assess_2", "attempt_id": "mg-att-1",
         "last_attempted_on": datetime(2023, 4, 1, 8), "total_score": 4.0, "total_max_score": 5.0,
         "grand_total": "4.0/5.0"},
    ],
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--keyspace", default="sunbird_courses")
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--reset", action="store_true")
    a = ap.parse_args()

    import redis  # venv-only dependencies
    from cassandra.cluster import Cluster

    cluster = Cluster([a.host], port=a.port)
    try:
        s = cluster.connect(a.keyspace)
        if a.reset:
            for user in (F, T):
                s.execute("DELETE FROM user_content_consumption WHERE userid = %s", (user,))
                s.execute("DELETE FROM user_enrolments WHERE userid = %s", (user,))
                for course in (C1, C2):
                    s.execute("DELETE FROM user_activity_agg WHERE activity_type = 'Course' AND activity_id = %s "
                              "AND user_id = %s", (course, user))
                    s.execute("DELETE FROM assessment_aggregator WHERE user_id = %s AND course_id = %s",
                              (user, course))
            r = redis.Redis(port=a.redis_port, db=3)
            r.delete(f"merge-user-courses:journal:{F}:{T}", f"merge-user-courses:done:{F}:{T}")
        for table, rows in ROWS.items():
            for row in rows:
                cols = list(row)
                stmt = s.prepare(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})")
                s.execute(stmt, [row[c] for c in cols])
        print(f"[sample] {sum(map(len, ROWS.values()))} rows for {F} and {T} loaded into {a.keyspace}")
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
