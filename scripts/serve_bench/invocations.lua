-- wrk script: one 112-value observation per POST /invocations, for `mlflow models serve`.
local values = {}
for i = 1, 112 do values[i] = string.format("%.4f", math.sin(i)) end
local body = '{"inputs": [[' .. table.concat(values, ",") .. ']]}'
function request()
  return wrk.format("POST", "/invocations", {["Content-Type"] = "application/json"}, body)
end
