"""ParseEvents on DirectRunner: the TestPipeline + assert_that shape every job test follows."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.io.parse import ParseEvents


def test_parse_events_splits_good_and_failed_records_and_loses_nothing():
    raw = [b'{"mid":"m1"}', "{broken", b'{"mid":"m2","n":1}', b"[]", b'{"big":"' + b"x" * 300 + b'"}']
    with TestPipeline() as p:
        events, failed = p | beam.Create(raw) | ParseEvents("test-job", max_event_bytes=256)
        assert_that(events, equal_to([{"mid": "m1"}, {"mid": "m2", "n": 1}]), label="events")
        assert_that(
            failed | beam.Map(lambda f: (f["jobName"], f["failInfo"]["stage"], f["raw"][:8],
                                         f["failInfo"]["error"].split(":")[0].split(" of ")[0])),
            equal_to([
                ("test-job", "parse", "{broken", "malformed JSON"),
                ("test-job", "parse", "[]", "event must be a JSON object, got list"),
                ("test-job", "parse", '{"big":"', "event"),
            ]),
            label="failed")


def test_a_jsonl_backfill_routes_poison_lines_to_failed_and_keeps_going(tmp_path):
    """Invalid UTF-8, a lone surrogate, a 5,000-digit integer and NaN in a file: the read does not
    fail, each poison line is a failed record with its raw text, the good lines are events."""
    from pipelines.io.events import EventIO, ReadEvents

    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"mid":"ok1"}\n\xff\xfe{"mid":"bad"}\n{"mid":"x\\ud800"}\n'
                     b'{"n":' + b"9" * 5000 + b'}\n{"s":NaN}\n{"mid":"ok2"}\n')
    with TestPipeline() as p:
        events, failed = p | ReadEvents(EventIO(input=str(path)), "unused", "test-job")
        assert_that(events, equal_to([{"mid": "ok1"}, {"mid": "ok2"}]), label="events")
        assert_that(failed | beam.Map(lambda f: f["failInfo"]["error"].split(":")[0]),
                    equal_to(["not UTF-8", "malformed JSON", "malformed JSON", "malformed JSON"]), label="failed")


def test_validate_events_counts_each_outcome_under_the_jobs_names():
    from apache_beam.metrics.metric import MetricsFilter

    from pipelines.domain.errors import InvalidRequest, Skip
    from pipelines.transforms.validate import ValidateEvents, ValidationMetrics

    def parse(event):
        kind = event["kind"]
        if kind == "other":
            raise Skip("not ours")
        if kind == "image":
            raise Skip("a mime type we ignore", metric="skipped-mimetype-count")
        if kind == "bad":
            raise InvalidRequest("edata.x is missing")
        return [event["n"]] * event["n"], 1

    events = [{"kind": "ok", "n": 2}, {"kind": "other"}, {"kind": "image"}, {"kind": "image"}, {"kind": "bad"}]
    p = TestPipeline()
    valid, failed = p | beam.Create(events) | ValidateEvents("v-job", parse, ValidationMetrics(
        failed="failed-count", valid="valid-count", ignored="ignored-count"))
    assert_that(valid, equal_to([2, 2]), label="valid")
    assert_that(failed | beam.Map(lambda f: (f["failInfo"]["error"], f["kind"])),
                equal_to([("edata.x is missing", "bad")]), label="failed")
    result = p.run()
    result.wait_until_finish()
    counts = {c.key.metric.name: c.committed for c in
              result.metrics().query(MetricsFilter().with_namespace("v-job"))["counters"]}
    assert counts == {"total-events-count": 5, "valid-count": 1, "ignored-count": 1, "skipped-events-count": 3,
                      "skipped-mimetype-count": 2, "failed-count": 1}
