-- wrk script for bench/bench_api.py: POST /v1/scores with one invoice drawn at random per request,
-- or GET the path given on the command line (worklist). The API key comes with wrk's -H option.
--   wrk -t1 -c4 -d15s -s bench/wrk_api.lua -H "Authorization: Bearer KEY" URL -- MODE AS_OF IDS_FILE SEED
-- MODE: "score1" (one random invoice of IDS_FILE per request) or "get" (the URL as given).
-- Prints one JSON line: requests, seconds, p50/p99 latency (ms), errors (socket and non-2xx).

local mode, as_of, ids = "get", nil, {}

wrk.headers["Content-Type"] = "application/json"

function init(args)
  mode = args[1] or "get"
  as_of = args[2]
  if mode == "score1" then
    for line in io.lines(args[3]) do ids[#ids + 1] = line end
    math.randomseed(tonumber(args[4]) or 0)
  end
end

function request()
  if mode == "score1" then
    local body = '{"as_of":"' .. as_of .. '","invoice_ids":["' .. ids[math.random(#ids)] .. '"]}'
    return wrk.format("POST", "/v1/scores", nil, body)
  end
  return wrk.format("GET")
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"socket_errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.connect + e.read + e.write + e.timeout, e.status))
end
