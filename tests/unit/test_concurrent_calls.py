import threading
import time
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.transforms.concurrent_calls import Tally, map_concurrently


def test_outputs_come_in_input_order_with_at_most_the_pool_size_in_flight():
    running, peak, lock = [0], [0], threading.Lock()

    def handler(n):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02 * (12 - n))  # later items finish first
        with lock:
            running[0] -= 1
        return [n, -n]

    with ThreadPoolExecutor(max_workers=4) as pool:
        out = list(map_concurrently(pool, Tally("t", []), handler, range(12)))
    assert out == [x for n in range(12) for x in (n, -n)]
    assert peak[0] == 4


class _CountingFn(beam.DoFn):
    def setup(self):
        self.c = Tally("concurrent-test", ["seen-count", "odd-count"])
        self.pool = ThreadPoolExecutor(max_workers=3)

    def teardown(self):
        self.pool.shutdown()

    def process(self, batch):
        yield from map_concurrently(self.pool, self.c, self._one, batch)

    def _one(self, n):
        self.c.inc("seen-count")
        if n % 2:
            self.c.inc("odd-count", 10)
        yield n * 2


def test_counts_made_on_pool_threads_reach_the_job_metrics():
    p = TestPipeline()
    out = (p | beam.Create(list(range(20))) | beam.BatchElements(min_batch_size=5, max_batch_size=5)
           | beam.ParDo(_CountingFn()))
    assert_that(out, equal_to([n * 2 for n in range(20)]))
    result = p.run()
    result.wait_until_finish()
    counts = {c.key.metric.name: c.committed for c in
              result.metrics().query(MetricsFilter().with_namespace("concurrent-test"))["counters"]}
    assert counts == {"seen-count": 20, "odd-count": 100}
