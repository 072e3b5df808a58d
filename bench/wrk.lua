-- wrk's script for bench/load.py: the method (and a POST's JSON:API body) from the environment,
-- the URL and headers from the command line, and one machine-readable line at the end, in
-- microseconds always (wrk's text report switches units). Any error or non-2xx answer counts.
wrk.method = os.getenv("BENCH_WRK_METHOD")
wrk.body = os.getenv("BENCH_WRK_BODY")

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("BENCH_RESULT requests=%d duration_us=%d errors=%d\n",
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
