"""user-cache-updater-2.0 pure rules: event reading, metadata derivation, stringify, stale fields."""

from __future__ import annotations

import pytest

from pipelines import job, user_cache
from pipelines.domain import user_cache as U
from pipelines.domain.javafmt import java_hashmap_order
from pipelines.options import user_cache as UO

S = U.UserFieldRules()


def audit(uid="u1", state="Update", pid="learner-service", cdata=None, otype="User"):
    return {"eid": "AUDIT", "mid": f"m-{uid}", "context": {"pdata": {"pid": pid}, "cdata": cdata or []},
            "object": {"id": uid, "type": otype}, "edata": {"state": state}}


PROFILE = {
    "firstName": "Asha", "lastName": None, "encEmail": "enc-e", "encPhone": "enc-p", "language": ["English", "Hindi"],
    "rootOrgId": "org1", "rootOrg": {"orgName": "Org [One]"}, "status": 1, "userId": "u1",
    "framework": {"id": ["fw1"], "board": ["B1"], "medium": [], "gradeLevel": ["G1", "G2"], "other": ["x"]},
    "userLocations": [{"type": "state", "name": "S1", "code": "s"}, {"type": "District", "name": "D1"},
                      {"type": "school", "name": "Sch", "code": "123"}],
    "profileUserTypes": [{"type": "teacher", "subType": "hm"}, {"type": "teacher", "subType": ""},
                         {"type": "parent"}],
}


def test_classify_and_skips():
    assert U.classify(audit(state="created")) == ("u1", "CREATED")
    for ev in (audit(otype="Content"), audit(state="Login"), {"object": {"id": "u", "type": "user"}},
               audit(uid=""), {"object": None}):
        with pytest.raises(U.Skip):
            U.classify(ev)


def test_general_info_from_cdata():
    ev = audit(cdata=[{"id": "sso", "type": "signuptype"}, {"id": "teacher", "type": "UserRole"}, {"id": "x"}])
    assert U.general_info(ev, S) == {"usersignintype": "Validated", "userlogintype": "teacher"}
    assert U.general_info(audit(cdata=[{"id": "google", "type": "SignupType"}]), S) == {
        "usersignintype": "Self-Signed-In"}
    # last matching entry wins; unknown sign-up types add nothing
    assert U.general_info(audit(cdata=[{"id": "self", "type": "SignupType"}, {"id": "odd", "type": "SignupType"}]),
                          S) == {}


def test_registered_info_derivation():
    asked = []

    def categories(fw):
        asked.append(fw)
        return ["board", "medium", "gradeLevel", "subject"]

    info = U.registered_info(PROFILE, categories)
    assert asked == ["fw1"]
    assert info == {
        "framework_id": "fw1", "framework_board": ["B1"], "framework_gradeLevel": ["G1", "G2"],
        "state": "S1", "District": "D1", "schoolname": "Sch", "schooludisecode": "123",
        "usertype": "teacher,parent", "usersubtype": "hm",
        "profileusertypes": '[{"subType":"hm","type":"teacher"},{"subType":"","type":"teacher"},{"type":"parent"}]',
        "firstname": "Asha", "lastname": None, "language": ["English", "Hindi"], "orgname": "Org [One]",
        "rootorgid": "org1", "phone": "enc-p", "email": "enc-e", "status": 1, "userid": "u1"}


def test_registered_info_tolerates_missing_parts():
    info = U.registered_info({"userId": "u2"}, lambda fw: pytest.fail("no framework to read"))
    assert info["userid"] == "u2" and info["orgname"] is None and "usertype" not in info


def test_stringify_like_the_reference():
    out = U.stringify({"a": "plain", "b": "Org [One]", "c": None, "d": ["x", "y"], "e": {"k": 1}, "f": 1, "g": 1.0})
    assert out == {"a": "plain", "b": "Org \\[One\\]", "c": "", "d": '["x","y"]', "e": '{"k":1}', "f": "1", "g": "1"}


def test_stale_fields_removes_old_locations_and_frameworks():
    existing = {"state": "S", "district": "D", "block": "", "framework_board": "[]", "framework_medium": "[]",
                "firstname": "A", "usersignintype": "Validated"}
    new = {"state": "S2", "framework_board": '["B"]', "firstname": "A"}
    assert U.stale_fields(existing, new, U.REMOVABLE_FIELDS) == ["district", "framework_medium"]


@pytest.mark.parametrize("status,body,expected", [
    (200, {"responseCode": "OK", "result": {"response": {"id": "u"}}}, ("ok", {"id": "u"})),
    (400, {"responseCode": "CLIENT_ERROR", "params": {"err": "UOS_USRRED0006"}, "result": {}}, ("blocked", None)),
    (404, {"responseCode": "RESOURCE_NOT_FOUND", "params": {"err": "USER_NOT_FOUND"}, "result": {}},
     ("missing", None)),
])
def test_read_outcome(status, body, expected):
    assert U.read_outcome(status, body, ("CLIENT_ERROR",)) == expected


@pytest.mark.parametrize("status,body", [(400, {"responseCode": "CLIENT_ERROR", "params": {"err": "OTHER"}}),
                                         (200, "not json"), (200, {"responseCode": "OK", "result": {}})])
def test_read_outcome_failures(status, body):
    with pytest.raises(U.UserReadFailed):
        U.read_outcome(status, body, ("CLIENT_ERROR",))


class FakeStore:
    def __init__(self, answer):
        self.answer = answer

    def read_user(self, uid):
        return self.answer

    def categories(self, fw):
        return []


def test_plan_event_rules():
    ok = FakeStore(("ok", {"userId": "u1", "firstName": "A"}))
    upd, api = U.plan_event(audit(cdata=[{"id": "self", "type": "SignupType"}]), S, ok)
    assert api == "ok" and upd.regd and upd.fields["usersignintype"] == "Self-Signed-In"
    assert upd.fields["firstname"] == "A"
    # another producer: no API call, event fields only, nothing cleaned
    upd, api = U.plan_event(audit(pid="portal", cdata=[{"id": "t", "type": "UserRole"}]), S, None)
    assert (upd.fields, upd.regd, api) == ({"userlogintype": "t"}, False, None)
    assert U.plan_event(audit(pid="portal"), S, None) == (None, None)
    # blocked user on update: only the event's fields, as the reference
    upd, api = U.plan_event(audit(cdata=[{"id": "t", "type": "UserRole"}]), S, FakeStore(("blocked", None)))
    assert api == "blocked" and upd.fields == {"userlogintype": "t"} and not upd.regd
    # delete of a user the API no longer serves removes the hash
    for answer in (("blocked", None), ("missing", None)):
        upd, _ = U.plan_event(audit(state="Deleted"), S, FakeStore(answer))
        assert upd.delete and upd.user_id == "u1"
    with pytest.raises(U.UserReadFailed):
        U.plan_event(audit(), S, FakeStore(("missing", None)))


def test_options_defaults_and_refresh_ids(tmp_path):
    opts = job.job_options([], user_cache.defaults, (UO.UserCacheOptions,))
    s = UO.settings(opts)
    assert s.user_read_url == "http://localhost:9000/api/user/v1/read/"
    assert s.framework_read_url == "http://localhost:9000/api/framework/v1/read/"
    assert s.rules.self_signin_types == ("google", "self") and s.key_expiry_secs is None
    assert UO.user_store_config(opts).db == 12
    assert job.values(opts)["kafka_input_topic"] == "local.telemetry.audit"
    f = tmp_path / "ids.txt"
    f.write_text("a\n# comment\n b \n\nc # trailing\n")
    assert UO.refresh_ids({"user_ids": "x, a,,y", "user_ids_file": str(f)}) == ["x", "a", "y", "b", "c"]
    opts = job.job_options(['--user_self_signin_types=["g"]', "--user_read_api_error=A,B"], user_cache.defaults,
                           (UO.UserCacheOptions,))
    assert UO.settings(opts).rules.self_signin_types == ("g",)
    assert UO.settings(opts).rules.read_api_errors == ("A", "B")


def test_reference_style_conf_lists(tmp_path):
    conf = tmp_path / "u.conf"
    conf.write_text('user.self.signin.types = ["google","self","otp"]\nuser.read.api.error = ["CLIENT_ERROR"]\n'
                    'redis-meta { database { userstore.id = 7 } }\nservice { userorg.basePath = "http://u:1" }\n')
    opts = job.job_options(["--config", str(conf)], user_cache.defaults, (UO.UserCacheOptions,))
    s = UO.settings(opts)
    assert s.rules.self_signin_types == ("google", "self", "otp") and s.user_read_url == "http://u:1/api/user/v1/read/"
    assert UO.user_store_config(opts).db == 7


# ---------------------------------------------------------------- issue 12: the reference's profileusertypes text

def test_profile_user_types_are_stored_as_the_references_gson_text():
    """Reference: ``new Gson().toJson(profileUserTypes)`` of a ``List<HashMap<String,String>>``, then
    stringify escapes the brackets. Keys come in HashMap order (subType, then type), nulls are dropped,
    strings are HTML-safe escaped."""
    put = [{"type": "administrator", "subType": "hm"}, {"type": "teacher", "subType": None},
           {"type": "a<b>&'=c", "subType": "ü"}]
    text = U.gson_profile_user_types(put)
    assert text == ('[{"subType":"hm","type":"administrator"},{"type":"teacher"},'
                    '{"subType":"ü","type":"a\\u003cb\\u003e\\u0026\\u0027\\u003dc"}]')
    info = U.registered_info({"profileUserTypes": put[:1]}, lambda fw: [])
    assert U.stringify(info)["profileusertypes"] == '\\[{"subType":"hm","type":"administrator"}\\]'
    assert (info["usertype"], info["usersubtype"]) == ("administrator", "hm")


def test_java_hashmap_order_matches_java():
    # Printed by java.util.HashMap.keySet() on JDK 17 for the same insertion orders.
    assert java_hashmap_order(["type", "subType"]) == ["subType", "type"]
    assert java_hashmap_order(["type", "subType", "name", "id"]) == ["name", "subType", "id", "type"]
    keys = ["id", "type", "subType", "name", "code", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"]  # resized to 32
    assert java_hashmap_order(keys) == ["x8", "code", "type", "name", "x1", "subType", "x2", "id", "x3", "x4",
                                          "x5", "x6", "x7"]


# ---------------------------------------------------------------- issue 12: ids are one URL path segment

def test_user_ids_are_percent_encoded_in_the_read_url():
    from pipelines.io.user_api import user_read_url
    base = "http://h/api/user/v1/read/"
    assert user_read_url(base, "u1", "locations,organisations") == \
        "http://h/api/user/v1/read/u1?fields=locations,organisations"
    # Before: the id's own "?fields=x#" replaced the query and cut the real one off as a fragment.
    assert user_read_url(base, "u1?fields=x#", "locations,organisations") == \
        "http://h/api/user/v1/read/u1%3Ffields%3Dx%23?fields=locations,organisations"
    assert user_read_url(base, "../admin/u 2%&", "f") == "http://h/api/user/v1/read/..%2Fadmin%2Fu%202%25%26?fields=f"


# ---------------------------------------------------------------- issue 12: list-valued reference keys

def test_list_options_are_json_serialisable_for_beam():
    """Beam puts every option into the pipeline proto as a JSON Struct; a tuple value made every run
    with a reference conf fail (ParseError ... tuple ... user_self_signin_types)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from google.protobuf import json_format
    from google.protobuf.struct_pb2 import Struct

    assert UO.string_list('["google","self"]') == ["google", "self"] and UO.string_list("a, b") == ["a", "b"]
    opts = job.job_options(['--user_self_signin_types=["google","self"]', "--user_validated_types=sso"],
                           user_cache.defaults, (UO.UserCacheOptions,))
    o = job.values(opts)
    assert o["user_self_signin_types"] == ["google", "self"] and o["user_validated_types"] == ["sso"]
    json_format.ParseDict({k: v for k, v in o.items() if k.startswith("user_")}, Struct())  # raised before
    assert isinstance(opts, PipelineOptions)
