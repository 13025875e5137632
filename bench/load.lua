-- wrk script for every HTTP load run of the bench, hub and baseline alike.
--
-- bench/bench.py copies this file with the @NAME@ placeholders of the code below filled
-- in, and runs `wrk -s <copy>`:
--   SECONDS  how long each thread sends the measured request
--   LIMIT    per-thread cap on measured requests (0: none); "100,000 requests" runs
--   DRAIN    1: once SECONDS or LIMIT is reached, each connection sends GET /healthz
--            (after a pause, see delay()) instead; once every measured request a thread
--            has in flight is answered, the thread drops a
--            marker file; the driver stops wrk (SIGINT) when every thread has. So every
--            measured request sent is also answered and counted, and nothing is cut off
--            at the end (the activity-row check of P1 depends on it).
--            0: plain wrk, for latency runs; requests in flight at the end are cut.
--   PACE_MS  milliseconds a connection waits before each request (0: closed loop)
--   METHOD, BODY  the measured request; its URL is wrk's, other headers come from -H
--   MARKER   path prefix of the marker files
--
-- An answer whose body holds '"status":"ok"' is a drain (/healthz) answer; any other is
-- an answer to the measured request: a 200 counts as ok, anything else as bad. done()
-- prints one line "BENCH {json}" for the driver. Times come from CLOCK_MONOTONIC through
-- LuaJIT's ffi, so the rate is measured over the measured phase only.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
unsigned long pthread_self(void);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local SECONDS = @SECONDS@
local LIMIT = @LIMIT@
local DRAIN = @DRAIN@
local PACE_MS = @PACE_MS@
local MARKER = "@MARKER@"

wrk.method = "@METHOD@"
wrk.body = @BODY@
if wrk.body ~= nil then
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- init() runs on the main thread; so does the one request() wrk calls on thread 0's
  -- state to inspect the request before the run, which must not count as sent.
  main_thread = ffi.C.pthread_self()
  action_req = wrk.format(nil, nil, nil, nil)
  drain_req = wrk.format("GET", "/healthz", {}, nil)
  started = 0
  last = 0
  sent = 0
  ok = 0
  bad = 0
  drained = 0
  deadline = 0
  finished = 0
end

local function measuring(t)
  if started == 0 then
    started = t
    deadline = t + SECONDS
  end
  return (t < deadline) and (LIMIT == 0 or sent < LIMIT)
end

local function check_finished()
  if DRAIN == 1 and finished == 0 and started > 0 and (ok + bad) >= sent
      and not ((now() < deadline) and (LIMIT == 0 or sent < LIMIT)) then
    finished = 1
    local f = io.open(MARKER .. "." .. id, "w")
    if f then
      f:write(string.format("%d %d %d\n", sent, ok, bad))
      f:close()
    end
  end
end

function request()
  if ffi.C.pthread_self() == main_thread then
    return action_req
  end
  local t = now()
  if measuring(t) or DRAIN == 0 then
    sent = sent + 1
    return action_req
  end
  check_finished()
  return drain_req
end

-- Once the measured phase is over, a connection waits a second before its drain request:
-- by then the driver has usually stopped wrk, so hardly any /healthz answer gets into
-- wrk's latency histogram (which counts every request) and skews the percentiles.
function delay()
  if DRAIN == 1 and started > 0 and not ((now() < deadline) and (LIMIT == 0 or sent < LIMIT)) then
    return 1000
  end
  return PACE_MS
end

function response(status, headers, body)
  if body ~= nil and string.find(body, '"status":"ok"', 1, true) then
    drained = drained + 1
    return
  end
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
  end
  last = now()
  check_finished()
end

function done(summary, latency, requests)
  local t_ok, t_bad, t_sent, first, final, t_drained = 0, 0, 0, math.huge, 0, 0
  for _, thread in ipairs(threads) do
    t_ok = t_ok + thread:get("ok")
    t_bad = t_bad + thread:get("bad")
    t_sent = t_sent + thread:get("sent")
    t_drained = t_drained + thread:get("drained")
    local s = thread:get("started")
    local l = thread:get("last")
    if s > 0 and s < first then first = s end
    if l > final then final = l end
  end
  local span = 0
  if final > first then span = final - first end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"ok":%d,"bad":%d,"sent":%d,"drained":%d,"span_s":%.6f,"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"lat_us":{"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,"max":%.1f,"mean":%.1f}}\n',
    t_ok, t_bad, t_sent, t_drained, span, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
