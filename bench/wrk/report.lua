-- Shared `done` hook: one machine-readable line with the request count, latency percentiles and
-- errors, in microseconds always (wrk's text report switches between us, ms and s), which
-- bench/load.py parses. Any error count fails the run: a 401 must never pass for a fast answer.
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
