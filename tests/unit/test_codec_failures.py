import json

import pytest

from pipelines.domain.failures import failed_event, failure_reason
from pipelines.io.codec import InvalidEvent, dumps, parse_event, payload_text
from pipelines.io.events import KafkaConfig, kafka_key, to_kafka_record


def test_parse_event_returns_dict_with_ints_and_floats():
    ev = parse_event(b'{"mid":"m1","edata":{"n":3,"score":1.5}}', 1024)
    assert ev == {"mid": "m1", "edata": {"n": 3, "score": 1.5}}
    assert isinstance(ev["edata"]["n"], int)


@pytest.mark.parametrize("raw, reason", [
    (b"{broken", "malformed JSON"),
    (b"", "empty record"),
    ("   ", "empty record"),
    (b"[1,2]", "must be a JSON object, got list"),
    (b'"text"', "must be a JSON object, got str"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_parse_event_rejects_with_reason(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw, 1024)


def test_parse_event_rejects_huge_payload_before_parsing():
    with pytest.raises(InvalidEvent, match="exceeds the limit of 100 bytes"):
        parse_event(b'{"a":"' + b"x" * 200 + b'"}', 100)


def test_parse_event_rejects_pathologically_deep_json():
    with pytest.raises(InvalidEvent, match="malformed JSON"):
        parse_event("[" * 100000 + "]" * 100000, 1 << 20)


def test_parse_event_rejects_events_nested_deeper_than_the_limit():
    deep = '{"a":' * 65 + "1" + "}" * 65
    with pytest.raises(InvalidEvent, match="nests deeper than 64 levels"):
        parse_event(deep, 1 << 20)
    ok = '{"a":' * 63 + "1" + "}" * 63
    assert parse_event(ok, 1 << 20)["a"]


def test_dumps_drops_nulls_at_every_level_like_jackson_non_null():
    assert json.loads(dumps({"a": None, "b": {"c": None, "d": 1}, "e": [{"f": None}]})) == {
        "b": {"d": 1}, "e": [{}]}


def test_payload_text_keeps_undecodable_bytes_visible():
    assert payload_text(b"ok\xff") == "ok\\xff"
    assert payload_text("plain") == "plain"


def test_failed_event_keeps_original_and_adds_both_reference_decorations():
    original = {"mid": "m1", "edata": {"userId": "u1"}, "metadata": {"keep": "me"}}
    out = failed_event("activity-aggregate-updater", "missing courseId", original, stage="validate")
    assert out["mid"] == "m1" and out["edata"] == {"userId": "u1"}
    assert out["jobName"] == "activity-aggregate-updater"
    assert out["failInfo"] == {"error": "missing courseId", "stage": "validate"}
    assert out["flags"] == {}
    assert out["metadata"] == {"keep": "me", "validation_error": "missing courseId",
                               "src": "activity-aggregate-updater"}
    assert failure_reason(out) == "missing courseId"
    assert original == {"mid": "m1", "edata": {"userId": "u1"}, "metadata": {"keep": "me"}}, "input not mutated"


def test_failed_event_for_unparsable_payload_keeps_raw_text():
    out = failed_event("job", "malformed JSON", raw="{broken", src="AssessmentAggregator")
    assert out["raw"] == "{broken"
    assert out["metadata"]["src"] == "AssessmentAggregator"


def test_failed_event_does_not_overwrite_non_dict_metadata_or_flags():
    out = failed_event("job", "bad", {"metadata": "text", "flags": {"x": True}})
    assert out["metadata"] == "text"
    assert out["flags"] == {"x": True}
    assert out["failInfo"]["error"] == "bad"


def test_kafka_key_is_mid_or_stable_digest():
    assert kafka_key({"mid": "m-9"}, b"{}") == b"m-9"
    k1, k2 = kafka_key({}, b'{"a":1}'), kafka_key({}, b'{"a":1}')
    assert k1 == k2 and k1 != kafka_key({}, b'{"a":2}')
    key, value = to_kafka_record({"mid": "m1", "x": None})
    assert key == b"m1" and value == b'{"mid":"m1"}'


def test_kafka_consumer_config_matches_reference_semantics():
    assert KafkaConfig(group_id="g").consumer_config() == {
        "bootstrap.servers": "localhost:9092", "isolation.level": "read_committed", "group.id": "g",
        "enable.auto.commit": "false"}, "offsets move only through Flink checkpoints"
    cfg = KafkaConfig(auto_offset_reset="earliest").consumer_config()
    assert cfg["auto.offset.reset"] == "earliest" and "group.id" not in cfg
    prod = KafkaConfig().producer_config()
    assert prod["linger.ms"] == "10" and prod["batch.size"] == "65536" and prod["compression.type"] == "snappy"


@pytest.mark.parametrize("raw, reason", [
    (b'{"mid":"x\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"mid":"x\\uDFFF tail"}', "lone UTF-16 surrogate"),
    (b'{"n":' + b"7" * 5000 + b"}", "4300 digits"),
    (b'{"score":NaN}', "non-standard JSON constant NaN"),
    (b'{"score":[Infinity]}', "non-standard JSON constant Infinity"),
    (b'{"score":-Infinity}', "non-standard JSON constant -Infinity"),
    (b'{"score":1e999999}', "number out of range: 1e999999"),
    (b'{"score":-2.5E+400}', "number out of range"),
])
def test_parse_event_refuses_what_could_not_be_written_out_again(raw, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(raw, 1 << 20)


def test_a_surrogate_pair_is_a_character_not_poison():
    ev = parse_event(b'{"mid":"smile \\ud83d\\ude00"}', 1024)
    assert ev["mid"] == "smile \U0001F600" and json.loads(dumps(ev)) == ev


def test_failed_event_keeps_an_earlier_decoration_under_previous():
    first = failed_event("job-a", "first reason", {"mid": "m", "gone": None}, stage="parse")
    again = failed_event("job-b", "second reason", first, stage="validate")
    assert again["jobName"] == "job-b" and failure_reason(again) == "second reason"
    assert again["failInfo"]["previous"] == {
        "jobName": "job-a", "failInfo": {"error": "first reason", "stage": "parse"},
        "metadata": {"validation_error": "first reason", "src": "job-a"}, "flags": {}}
    assert "gone" in again and again["gone"] is None
    assert json.loads(dumps(again, keep_nulls=True))["gone"] is None, "failed topics keep null-valued keys"
    assert "gone" not in json.loads(dumps(again)), "other topics drop them like the reference"


def test_original_event_undoes_the_decoration_even_twice_over():
    from pipelines.domain.failures import original_event

    event = {"mid": "m1", "edata": {"userId": None}, "metadata": {"own": 1}}
    once = failed_event("job-a", "store write failed: down", event, stage="write")
    assert original_event(once) == event
    twice = failed_event("job-b", "again", once, stage="read")
    assert original_event(twice) == once, "an earlier decoration comes back from failInfo.previous"
    assert original_event(failed_event("job-a", "malformed JSON", raw="{oops", stage="parse")) is None


def test_a_topic_can_be_keyed_by_something_else_than_mid():
    from pipelines.domain.cert_status import request_key

    event = {"mid": "m1", "edata": {"certificateId": "cert-7"}}
    key, value = to_kafka_record(event, key_fn=request_key)
    assert key == b"cert-7" and json.loads(value) == event
    key, _ = to_kafka_record({"mid": "m2", "edata": {}}, key_fn=request_key)
    assert len(key) == 32, "no certificate id: a stable digest, never a null key"
