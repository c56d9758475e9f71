-- wrk script. With a count N after `--`, request i asks for segment i mod N
-- (00000001000000000000000[1..N], in hex), so that requests in flight never
-- name the same segment: the sidecar joins concurrent pushes of one segment.
-- At the end, wrk's summary as one JSON line: latencies in microseconds.
local n = 0
local i = 0

init = function(args)
  n = tonumber(args[1] or "0")
end

request = function()
  if n == 0 then return wrk.format() end
  i = i + 1
  return wrk.format(nil, string.format("%s00000001%016X", wrk.path, (i % n) + 1))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"non_2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
