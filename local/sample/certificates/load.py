"""Seeds a sample batch with a certificate template for a manual run of the certificate jobs (invented data).

    .venv/bin/python local/sample/certificates/load.py [--reset]

Course ``do_cert_course_1`` batch ``cert_batch_1`` has one SVG template (``cert_tmpl_1``) whose
criteria are: enrolment completed (status 2) and a SelfAssess score >= 60%. Learners:
``cert-user-pass`` (completed, 80%), ``cert-user-low`` (completed, 40%), ``cert-user-busy``
(in progress). The emulator gets the course, the quiz and the three users. ``--reset`` first
clears the learners' ``issued_certificates`` and the exactly-once claims of this batch.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import datetime

import requests
from cassandra.cluster import Cluster

COURSE, BATCH, QUIZ, TMPL = "do_cert_course_1", "cert_batch_1", "do_cert_quiz_1", "cert_tmpl_1"
USERS = {"cert-user-pass": (2, 80.0, "Asha"), "cert-user-low": (2, 40.0, "Ravi"), "cert-user-busy": (1, None, "Mia")}
TEMPLATE = {
    "identifier": TMPL, "name": "Sample Completion Certificate", "url": "CLOUD_BASE_PATH/certs/sample.svg",
    "criteria": json.dumps({"enrollment": {"status": 2}, "assessment": {"score": {">=": 60}}}),
    "issuer": json.dumps({"name": "Sample Board of Learning", "url": "https://board.example"}),
    "signatoryList": json.dumps([{"name": "R. Rao", "id": "sig-1", "designation": "Director",
                                  "image": "https://board.example/sig.png"}]),
    "notifyTemplate": json.dumps({"subject": "Your certificate", "stateImageUrl": "CLOUD_BASE_PATH/logo.png"}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reset", action="store_true")
    ap.add_argument("--emulator", default="http://127.0.0.1:9000")
    args = ap.parse_args()
    cluster = Cluster(["127.0.0.1"])
    s = cluster.connect("sunbird_courses")
    s.execute("INSERT INTO course_batch (courseid, batchid, name, status, cert_templates) VALUES (%s, %s, %s, 1, %s)",
              (COURSE, BATCH, "Sample batch", {TMPL: TEMPLATE}))
    for uid, (status, score, _) in USERS.items():
        done = datetime(2024, 6, 1, 9) if status == 2 else None
        s.execute("INSERT INTO user_enrolments (userid, courseid, batchid, status, active, completedon) "
                  "VALUES (%s, %s, %s, %s, true, %s)", (uid, COURSE, BATCH, status, done))
        if args.reset:
            s.execute("UPDATE user_enrolments SET issued_certificates = null WHERE userid=%s AND courseid=%s AND "
                      "batchid=%s", (uid, COURSE, BATCH))
            ns = uuid.UUID("6f0c2a52-3a0e-5d8e-9a57-4c45e2a1c0de")
            claim = str(uuid.uuid5(ns, "|".join((uid, COURSE, BATCH, TMPL, ""))))
            try:
                s.execute("DELETE FROM cert_issue_claims WHERE cert_id = %s", (claim,))
            except Exception:  # noqa: BLE001 - the table appears with the generator's first run
                pass
        if score is not None:
            s.execute("UPDATE user_activity_agg SET aggregates = %s WHERE activity_type = 'Course' AND "
                      "activity_id = %s AND user_id = %s AND context_id = %s",
                      ({f"score:{QUIZ}": score, f"max_score:{QUIZ}": 100.0}, COURSE, uid, f"cb:{BATCH}"))
    seed = {"contents": {COURSE: {"name": "Sample Course: Fractions & Decimals", "contentType": "Course"},
                         QUIZ: {"name": "Fractions quiz", "contentType": "SelfAssess"}},
            "users": {uid: {"firstName": first, "lastName": "Sample", "rootOrgId": "org_sample"}
                      for uid, (_, _, first) in USERS.items()}}
    requests.post(f"{args.emulator}/__emulator/seed", json=seed, timeout=10).raise_for_status()
    cluster.shutdown()
    print(f"seeded {COURSE}/{BATCH} with {len(USERS)} learners")


if __name__ == "__main__":
    main()
