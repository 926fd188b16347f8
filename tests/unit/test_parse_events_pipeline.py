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
