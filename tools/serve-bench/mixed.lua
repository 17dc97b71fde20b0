-- wrk script of tools/serve-bench/run.sh: every request is the next of the
-- list in the file named by BODIES (requests of several tasks and
-- endpoints, in turn).
dofile(os.getenv("BODIES"))

local i = 0

request = function()
  i = i + 1
  local r = requests[(i % #requests) + 1]
  return wrk.format("POST", r.path, { ["Content-Type"] = "application/json" }, r.body)
end
