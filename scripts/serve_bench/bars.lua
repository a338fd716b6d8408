-- wrk script: single-bar POST /v1/bars requests for `ratchet serve`. Each wrk thread cycles
-- through its own SYMBOLS symbols; a symbol's bars carry increasing timestamps, and with far
-- fewer connections than symbols per thread, a symbol's previous request has always been
-- answered before its next one is sent. Timestamps are epoch milliseconds from this run's start
-- time, one millisecond per bar of a symbol (so at most 1,000 bars a second per symbol), and
-- later runs continue the same sessions. BATCH > 1 sends that many symbols per request.
-- EXTERNAL=1 gives each bar an outside value, `"external":{"vix":...}` (a version whose
-- features join the outside source `vix`).
local symbols = tonumber(os.getenv("SYMBOLS") or "1000")
local batch = tonumber(os.getenv("BATCH") or "1")
local external = os.getenv("EXTERNAL") == "1"
local threads = 0
local counter = 0
local base = os.time() * 1000

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local function bar(symbol_index, t)
  local price = 100 + 10 * math.sin(t / 50 + symbol_index)
  local outside = external and string.format(',"external":{"vix":%.4f}', 15 + 3 * math.sin(t / 20)) or ""
  return string.format(
    '{"symbol":"T%d-%d","bars":[{"timestamp":%d,"open":%.4f,"high":%.4f,"low":%.4f,"close":%.4f,"volume":1000%s}]}',
    id, symbol_index, base + t, price, price + 1, price - 1, price + 0.5, outside)
end

function request()
  local parts = {}
  for k = 1, batch do
    counter = counter + 1
    local t = math.floor(counter / symbols)
    parts[k] = bar(counter % symbols, t)
  end
  local body = batch == 1 and parts[1] or ("[" .. table.concat(parts, ",") .. "]")
  return wrk.format("POST", "/v1/bars", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = (errors or 0) + 1
    if errors <= 3 then io.stderr:write("HTTP " .. status .. ": " .. body .. "\n") end
  end
end
