-- wrk script of bench/driver.py: send the requests of a pre-generated file, each exactly once.
--
-- Every engagebot request must be new (fresh signature, nonce and message id: the replay cache
-- refuses a nonce twice), so wrk may not repeat one. The file (BENCH_REQUESTS) holds records
-- "<path length> <headers length> <body length>\n<path><headers><body>", headers as "Name: value\n".
-- With several wrk threads, thread k of n takes records k, k+n, k+2n... (each thread has its own Lua state).
-- BENCH_WRAP=1 starts over at the end (the bare handler checks nothing); otherwise the thread stops.
-- BENCH_DONE: where a thread out of requests leaves a marker file (BENCH_DONE.<thread index>).
-- BENCH_EXPECT: the prefix every answer's body must start with (empty: the status alone counts).

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local requests = {}
local cursor = 0
local wrap = os.getenv("BENCH_WRAP") == "1"
local expect = os.getenv("BENCH_EXPECT") or ""
local stop_request = nil
local stopping = false
exhausted = 0
unexpected = 0

function init(args)
  local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  local index = thread_index or 0
  local f = assert(io.open(os.getenv("BENCH_REQUESTS"), "rb"))
  local data = f:read("*a")
  f:close()
  local pos, n = 1, 0
  while pos <= #data do
    local newline = data:find("\n", pos, true)
    local path_len, headers_len, body_len = data:sub(pos, newline - 1):match("^(%d+) (%d+) (%d+)$")
    path_len, headers_len, body_len = tonumber(path_len), tonumber(headers_len), tonumber(body_len)
    local p = newline + 1
    local path = data:sub(p, p + path_len - 1)
    p = p + path_len
    local headers = {}
    for name, value in data:sub(p, p + headers_len - 1):gmatch("([^:\n]+): ([^\n]*)\n") do
      headers[name] = value
    end
    p = p + headers_len
    local body = data:sub(p, p + body_len - 1)
    pos = p + body_len
    if n % stride == index then
      -- Formatted once here: formatting per request would cost wrk time in the measured loop.
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
    end
    n = n + 1
  end
  stop_request = wrk.format("GET", "/healthz")
end

function request()
  cursor = cursor + 1
  if cursor > #requests then
    if wrap and #requests > 0 then
      cursor = 1
    else
      -- Out of fresh requests: stop; a harmless probe fills the slot wrk wants filled.
      exhausted = exhausted + 1
      if not stopping then
        -- wrk's main thread sleeps out -d whatever the threads do: tell the driver, which interrupts it.
        local marker = io.open(os.getenv("BENCH_DONE") .. "." .. (thread_index or 0), "w")
        marker:close()
      end
      stopping = true
      wrk.thread:stop()
      return stop_request
    end
  end
  return requests[cursor]
end

if expect ~= "" then
  function response(status, headers, body)
    if status == 200 and not stopping and (body == nil or body:sub(1, #expect) ~= expect) then
      unexpected = unexpected + 1
    end
  end
end

function done(summary, latency, requests_)
  local sent, unexpected_total = 0, 0
  for _, thread in ipairs(threads) do
    sent = sent + (thread:get("exhausted") or 0)
    unexpected_total = unexpected_total + (thread:get("unexpected") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"non2xx": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "probes": %d, "unexpected": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout, sent, unexpected_total))
end
