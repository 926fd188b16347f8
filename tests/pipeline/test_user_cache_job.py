"""user-cache-updater-2.0 on DirectRunner against the real Redis (db 12) and the Sunbird emulator.

Each test seeds its own users and framework (ids prefixed with ``run_id``) and asserts the hashes
``user:<id>`` field by field, the user read calls the emulator recorded, and the accounting.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import requests

from pipelines import user_cache
from tests.batch_runs import run_job

EMULATOR = "http://127.0.0.1:9000"


def seed(run_id: str) -> dict:
    fw = f"{run_id}_fw"
    users = {
        f"{run_id}-u1": {
            "firstName": "Asha", "lastName": "Rao", "rootOrgId": "org-1", "rootOrg": {"orgName": "Trust [North]"},
            "status": 1, "encEmail": "enc-e-1", "encPhone": "enc-p-1", "language": ["English", "Hindi"],
            "framework": {"id": [fw], "board": ["CBSE"], "gradeLevel": ["Class 5", "Class 6"], "extra": ["x"]},
            "userLocations": [{"type": "state", "name": "Karnataka", "code": "KA"},
                              {"type": "school", "name": "Govt School", "code": "29000000001"}],
            "profileUserTypes": [{"type": "teacher", "subType": "hm"}, {"type": "administrator", "subType": ""}]},
        f"{run_id}-u2": {"firstName": "Ben", "rootOrg": {"orgName": "Org"}, "rootOrgId": "org-2", "status": 1,
                         "language": [], "framework": {}, "userLocations": []},
        f"{run_id}-blocked": {"firstName": "Cy", "status": 0},
        f"{run_id}-deleted": {"firstName": "Di", "status": 2, "isDeleted": True},
    }
    r = requests.post(f"{EMULATOR}/__emulator/seed", json={
        "users": users, "frameworks": {fw: {"name": "F", "categories": [{"code": "board"}, {"code": "medium"},
                                                                         {"code": "gradeLevel"}]}}}, timeout=5)
    r.raise_for_status()
    return users


def audit(uid: str, state: str = "Update", pid: str = "learner-service", cdata=None, otype: str = "User") -> dict:
    return {"eid": "AUDIT", "ets": 1700000000000, "ver": "3.0", "mid": f"AUDIT.{uid}.{state}",
            "actor": {"id": uid, "type": "User"},
            "context": {"channel": "ch", "env": "User", "pdata": {"id": "dev.portal", "pid": pid, "ver": "1"},
                        "cdata": cdata or []},
            "object": {"id": uid, "type": otype}, "edata": {"state": state, "props": ["firstName"]}}


def run(tmp_path: Path, name: str, lines: list | None, *extra: str) -> tuple[dict, Path]:
    return run_job(user_cache, tmp_path, name, lines, *extra, extra_groups=(user_cache.UserCacheOptions,))


def failed(out: Path) -> list[dict]:
    path = out / "local.user.cache.updater.failed.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


@pytest.fixture
def store(stack, run_id):
    r = redis.Redis(port=stack["redis"], db=12, decode_responses=True)
    yield r
    keys = list(r.scan_iter(f"user:{run_id}*"))
    if keys:
        r.delete(*keys)


def reads(uid: str) -> list[dict]:
    return requests.get(f"{EMULATOR}/__emulator/requests", params={"path_prefix": f"/api/user/v1/read/{uid}"},
                        timeout=5).json()


def test_user_events_write_the_hash_field_by_field(store, tmp_path, run_id):
    seed(run_id)
    u1, u2, blocked, deleted = (f"{run_id}-{x}" for x in ("u1", "u2", "blocked", "deleted"))
    other = f"{run_id}-portal"
    # stale data from an older profile: removable location and framework fields go, others stay
    store.hset(f"user:{u1}", mapping={"district": "Old District", "framework_medium": '["Kannada"]',
                                      "framework_board": '["Old"]', "usersignintype": "Validated", "custom": "kept"})
    store.hset(f"user:{deleted}", mapping={"firstname": "Di", "email": "enc"})
    store.hset(f"user:{blocked}", mapping={"firstname": "Cy"})
    lines = [
        audit(u1, cdata=[{"id": "google", "type": "SignupType"}, {"id": "teacher", "type": "UserRole"}]),
        audit(u2, state="Created"),
        audit(other, pid="dev.portal", cdata=[{"id": "sso", "type": "SignupType"}]),  # no API call
        audit(blocked, cdata=[{"id": "student", "type": "UserRole"}]),  # blocked: event fields only
        audit(deleted, state="Deleted"),  # hash removed
        audit(f"{run_id}-ghost"),  # unknown user on update: failed
        audit(f"{run_id}-c", otype="Content"),  # skipped
        audit(u2, state="Login"),  # skipped
        audit(f"{run_id}-nothing", pid="dev.portal"),  # nothing to write: skipped
        "{broken",
    ]
    totals, out = run(tmp_path, "events", lines)

    assert store.hgetall(f"user:{u1}") == {
        "usersignintype": "Self-Signed-In", "userlogintype": "teacher", "custom": "kept",
        "framework_id": f"{run_id}_fw", "framework_board": '["CBSE"]', "framework_gradeLevel": '["Class 5","Class 6"]',
        "state": "Karnataka", "schoolname": "Govt School", "schooludisecode": "29000000001",
        "usertype": "teacher,administrator", "usersubtype": "hm",
        # the reference's form: Gson of List<HashMap> (subType before type), brackets escaped
        "profileusertypes": '\\[{"subType":"hm","type":"teacher"},{"subType":"","type":"administrator"}\\]',
        "firstname": "Asha", "lastname": "Rao", "language": '["English","Hindi"]', "orgname": "Trust \\[North\\]",
        "rootorgid": "org-1", "phone": "enc-p-1", "email": "enc-e-1", "status": "1", "userid": u1}
    assert store.hgetall(f"user:{u2}") == {
        "firstname": "Ben", "lastname": "", "language": "[]", "orgname": "Org", "rootorgid": "org-2",
        "phone": "", "email": "", "status": "1", "userid": u2}
    assert store.hgetall(f"user:{other}") == {"usersignintype": "Validated"}
    assert store.hgetall(f"user:{blocked}") == {"firstname": "Cy", "userlogintype": "student"}
    assert not store.exists(f"user:{deleted}") and not store.exists(f"user:{run_id}-ghost")
    assert store.ttl(f"user:{u1}") == -1  # the reference never expires user hashes

    [call] = reads(u1)
    assert call["method"] == "GET" and call["query"] == {"fields": "locations,organisations"}
    assert reads(other) == []

    fails = failed(out)
    assert sorted(f.get("object", {}).get("id", "raw") for f in fails) == sorted([f"{run_id}-ghost", "raw"])
    assert "not found" in next(f for f in fails if "object" in f)["failInfo"]["error"]
    assert totals["total-audit-events-count"] == 9
    assert totals["success-message-count"] == 4 and totals["user-cache-deleted-count"] == 1
    assert totals["skipped-message-count"] == 3 and totals["failed-message-count"] == 2
    assert totals["api-read-success-count"] == 2 and totals["api-read-miss-count"] == 3
    processed = totals["success-message-count"] + totals["user-cache-deleted-count"]
    assert processed + totals["skipped-message-count"] + totals["failed-message-count"] == len(lines)

    # Replay: the same hashes.
    before = {k: store.hgetall(k) for k in (f"user:{u1}", f"user:{u2}", f"user:{other}", f"user:{blocked}")}
    run(tmp_path, "replay", lines)
    assert {k: store.hgetall(k) for k in before} == before


def test_batch_refresh_rewrites_hashes_from_the_user_api(store, tmp_path, run_id):
    seed(run_id)
    u1, u2 = f"{run_id}-u1", f"{run_id}-u2"
    store.hset(f"user:{u1}", mapping={"firstname": "Old", "block": "Old Block", "userlogintype": "teacher"})
    store.hset(f"user:{run_id}-gone", mapping={"firstname": "Gone"})
    store.hset(f"user:{run_id}-blocked", mapping={"firstname": "Cy"})
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"# users to refresh\n{u2}\n{run_id}-gone\n{run_id}-blocked\n")
    totals, out = run(tmp_path, "refresh", None, f"--user_ids={u1},{u2}", f"--user_ids_file={ids_file}")

    h1 = store.hgetall(f"user:{u1}")
    assert h1["firstname"] == "Asha" and "block" not in h1 and h1["userlogintype"] == "teacher"
    assert h1["framework_board"] == '["CBSE"]' and h1["state"] == "Karnataka"
    assert store.hgetall(f"user:{u2}")["firstname"] == "Ben"
    assert not store.exists(f"user:{run_id}-gone")
    assert store.hgetall(f"user:{run_id}-blocked") == {"firstname": "Cy"}  # blocked: left as it is
    assert totals["refresh-user-count"] == 4 and totals["success-message-count"] == 2
    assert totals["user-cache-deleted-count"] == 1 and totals["skipped-message-count"] == 1
    assert failed(out) == [] and len(reads(u2)) == 1


def test_user_api_outage_dead_letters_the_event(store, tmp_path, run_id):
    seed(run_id)
    u1 = f"{run_id}-u1"
    requests.post(f"{EMULATOR}/__emulator/faults", json={"path_prefix": f"/api/user/v1/read/{u1}", "status": 503,
                                                          "times": 2}, timeout=5).raise_for_status()
    totals, out = run(tmp_path, "outage", [audit(u1)], "--http_retries=1")
    [f] = failed(out)
    assert f["object"]["id"] == u1 and "503" in f["failInfo"]["error"] and f["failInfo"]["stage"] == "user-read"
    assert not store.exists(f"user:{u1}") and totals["failed-message-count"] == 1
    # the fault is spent: a replay of the failed event succeeds
    totals, _ = run(tmp_path, "again", [audit(u1)], "--user_cache_key_expiry_enabled=true",
                    "--redis_meta_database_key_expiry_seconds=120")
    assert store.hget(f"user:{u1}", "firstname") == "Asha" and totals["success-message-count"] == 1
    assert 0 < store.ttl(f"user:{u1}") <= 120  # opt-in expiry


def test_framework_read_outage_dead_letters_instead_of_crashing(store, tmp_path, run_id):
    seed(run_id)
    u1 = f"{run_id}-u1"
    requests.post(f"{EMULATOR}/__emulator/faults", json={"path_prefix": f"/api/framework/v1/read/{run_id}_fw",
                                                          "status": 500, "times": 2}, timeout=5).raise_for_status()
    totals, out = run(tmp_path, "fw", [audit(u1), audit(f"{run_id}-u2")], "--http_retries=1")
    [f] = failed(out)
    assert f["object"]["id"] == u1 and "framework read failed" in f["failInfo"]["error"]
    assert not store.exists(f"user:{u1}") and store.hget(f"user:{run_id}-u2", "firstname") == "Ben"
    assert totals["failed-message-count"] == 1 and totals["success-message-count"] == 1


def test_a_reference_style_conf_runs_the_job(store, tmp_path, run_id):
    """Issue 12: every run with a reference conf failed (``ParseError ... tuple ...
    user_self_signin_types``: list-valued keys became tuples, which Beam cannot put into the
    pipeline proto). This conf has the reference conf's keys and value shapes: an include, list
    values, nested blocks, the ``user-read.api.url`` block next to ``user_read_api``."""
    seed(run_id)
    u1 = f"{run_id}-u1"
    (tmp_path / "base-config.conf").write_text(
        'kafka { broker-servers = "localhost:9092" }\njob { env = "local" }\n'
        'task { parallelism = 1, checkpointing.interval = 60000 }\nredis-meta { host = 127.0.0.1\n port = 6379 }\n')
    conf = tmp_path / "user-cache-updater-v2.conf"
    conf.write_text(f"""include "base-config.conf"
kafka {{
  input.topic = ${{job.env}}".telemetry.audit"
  groupId = ${{job.env}}"-user-cache-updater-group"
}}
task {{ usercache.updater.parallelism = 1 }}
redis-meta {{
  database {{
    userstore.id = 12
    key.expiry.seconds = 3600
  }}
}}
user-read {{ api {{ url = "/userorg/private/user/v1/read" }} }}
regd.user.producer.pid = "learner-service"
user.self.signin.types = ["google","self","{run_id}-otp"]
user.validated.types = ["sso"]
user.self.signin.key = "Self-Signed-In"
user.valid.key = "Validated"
user.read.url.fields = "locations,organisations"
user.read.api.error = ["CLIENT_ERROR"]
user_read_api = "/api/user/v1/read/"
framework_read_api = "/api/framework/v1/read/"
service {{
  taxonomy.basePath = "{EMULATOR}"
  userorg.basePath = "{EMULATOR}"
}}
""")
    totals, out = run(tmp_path, "conf", [audit(u1, cdata=[{"id": f"{run_id}-otp", "type": "SignupType"}])],
                      "--config", str(conf))
    h = store.hgetall(f"user:{u1}")
    assert h["usersignintype"] == "Self-Signed-In" and h["firstname"] == "Asha"  # the conf's own list was used
    assert totals["success-message-count"] == 1 and failed(out) == []


def test_an_id_with_query_characters_stays_one_path_segment(store, tmp_path, run_id):
    """Issue 12: ``<id>?fields=x#`` was concatenated raw into the user read URL, which changed the
    request (``fields=x``; the real query cut off as a fragment)."""
    seed(run_id)
    evil = f"{run_id}-u1?fields=x#"
    run(tmp_path, "evil", [audit(evil)])
    [call] = reads(f"{run_id}-u1")
    assert call["path"] == f"/api/user/v1/read/{run_id}-u1%3Ffields%3Dx%23"
    assert call["query"] == {"fields": "locations,organisations"}
    assert not store.exists(f"user:{run_id}-u1")  # never mistaken for the user whose id is its prefix


def test_update_user_cache_composite_against_redis_and_the_emulator(stack, store, run_id):
    """UpdateUserCache alone (as Beam's own composites are tested): a registered user's hash is
    written from the real user read API, an unknown user is failed with a reason, and a refresh
    of a user the API no longer knows deletes the hash."""
    import apache_beam as beam
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines.io.redis_store import RedisConfig
    from pipelines.options.user_cache import CacheSettings
    from pipelines.transforms.user_cache import UpdateUserCache

    seed(run_id)
    u1, ghost = f"{run_id}-u1", f"{run_id}-ghost"
    store.hset(f"user:{run_id}-gone", mapping={"firstname": "Gone"})
    s = CacheSettings(user_read_url=f"{EMULATOR}/api/user/v1/read/",
                      framework_read_url=f"{EMULATOR}/api/framework/v1/read/", http_retries=0)
    redis_cfg = RedisConfig(port=stack["redis"], db=12)
    with TestPipeline() as p:
        updated, fails = (p | "Events" >> beam.Create([audit(u1), audit(ghost)])
                          | "Update" >> UpdateUserCache("UserCacheUpdaterJobV2", s, redis_cfg))
        assert_that(updated, equal_to([u1]), label="updated")
        assert_that(fails | "Why" >> beam.Map(lambda f: (f["object"]["id"], f["failInfo"]["stage"],
                                                         "not found" in f["failInfo"]["error"])),
                    equal_to([(ghost, "user-read", True)]), label="failed")
    assert store.hget(f"user:{u1}", "framework_board") == '["CBSE"]'
    with TestPipeline() as p:
        updated, fails = (p | "Ids" >> beam.Create([f"{run_id}-gone"])
                          | "Refresh" >> UpdateUserCache("UserCacheUpdaterJobV2", s, redis_cfg, refresh=True))
        assert_that(updated, equal_to([f"{run_id}-gone"]), label="deleted")
        assert_that(fails, equal_to([]), label="nofail")
    assert not store.exists(f"user:{run_id}-gone")


def test_hostile_corpus_is_contained_and_accounted(store, tmp_path, run_id):
    """Issue 12: 200+ generated events (one field at a time replaced by a wrong type, a missing,
    empty or huge value, unicode, deep nesting, injection strings) and raw lines that are not
    events: the run finishes, every input is accounted once, failed records keep the event and
    say why, output is strict JSON, and only the one real user's hash is written."""
    from tests.pipeline.test_notification_job import hostile_corpus, strict_topics

    seed(run_id)
    u1 = f"{run_id}-u1"
    base = audit(u1, cdata=[{"id": "google", "type": "SignupType"}, {"id": "teacher", "type": "UserRole"}])
    paths = [("object",), ("object", "id"), ("object", "type"), ("edata",), ("edata", "state"), ("context",),
             ("context", "pdata"), ("context", "pdata", "pid"), ("context", "cdata"), ("eid",)]
    inputs = hostile_corpus(base, paths, run_id)
    assert len(inputs) >= 200
    totals, out = run(tmp_path, "corpus", inputs, "--http_retries=0")

    failed = strict_topics(out).get("local.user.cache.updater.failed.jsonl", [])
    t = {k: totals.get(k, 0) for k in ("success-message-count", "user-cache-deleted-count", "skipped-message-count",
                                       "failed-message-count")}
    assert sum(t.values()) == len(inputs) and len(failed) == t["failed-message-count"]
    assert t["success-message-count"] >= 1
    by_mid = {e["mid"]: e for e in inputs if isinstance(e, dict)}
    for f in failed:
        assert str(f["failInfo"]["error"]).strip()
        if f.get("mid") in by_mid:
            original = {k: v for k, v in by_mid[f["mid"]].items() if k not in ("metadata", "flags")}
            assert {k: f[k] for k in original} == original
    written = sorted(store.scan_iter(f"user:{run_id}*", count=1000))
    assert written == [f"user:{u1}"]  # a hostile id never writes another user's (or a truncated) key
    assert store.hget(f"user:{u1}", "firstname") == "Asha"
