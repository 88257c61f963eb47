-- wrk script: POST a JSON body with a token; count 2xx and non-2xx answers; print one JSON line at the end.
-- Environment: BENCH_TOKEN, BENCH_BODY_FILE (the request body), BENCH_PATH (default /messages); with no
-- BENCH_BODY_FILE it sends a plain GET with no token (bench/ceiling.py).
local token = os.getenv("BENCH_TOKEN")
local body_file = os.getenv("BENCH_BODY_FILE")
wrk.path = os.getenv("BENCH_PATH") or "/messages"
if body_file then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Token " .. token
else
  wrk.method = "GET"
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  bad = 0
  sent = 0
  prepared = wrk.format()
end

-- Count what was sent: requests still in flight when wrk stops are answered by the server but not counted by wrk.
function request()
  sent = sent + 1
  return prepared
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad, total_sent = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    total_sent = total_sent + thread:get("sent")
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us":%d,"requests":%d,"sent":%d,"ok":%d,"non_2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, total_sent, total_ok, total_bad, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
