-- Time per call of the spank_guard module in the lua5.1 interpreter.
--
--   lua5.1 lua-module/bench/evaluate.lua MODULE_DIR POLICY [CALLS]
--
-- MODULE_DIR holds spank_guard.so (a copy of libspank_guard_lua.so);
-- POLICY must be owned by root. Prints the mean CPU time per call of
-- load(), identity(0), evaluate() of a minimal request and of a request like
-- job_submit.lua builds (the policy is cached after the first call), and of
-- identity and evaluate together.

local module_dir, policy, calls = arg[1], arg[2], tonumber(arg[3] or "20000")
if module_dir == nil or policy == nil then
	io.stderr:write("usage: lua5.1 evaluate.lua MODULE_DIR POLICY [CALLS]\n")
	os.exit(2)
end
package.cpath = module_dir .. "/?.so;" .. package.cpath
local guard = require("spank_guard")

local request = {
	cluster = "bench",
	uid = 0,
	user = "root",
	groups = { "root" },
	options = { env = "prod", justification = "quarterly risk report" },
	env = { HOS_CORRELATION_ID = "4b8c6d1e-0f2a-4c3b-9d5e-6f7a8b9c0d1e" },
	job_name = "train",
	time_limit_minutes = 60,
}
local first, err = guard.evaluate(policy, request)
if first == nil then
	io.stderr:write("evaluate failed: " .. err .. "\n")
	os.exit(1)
end

local function time(label, body)
	local start = os.clock()
	for _ = 1, calls do
		body()
	end
	local micros = (os.clock() - start) / calls * 1e6
	print(string.format("%-22s %8.1f us per call (%d calls)", label, micros, calls))
end

time("load(policy)", function() guard.load(policy) end)
time("identity(0)", function() guard.identity(0) end)
time("evaluate(minimal)", function() guard.evaluate(policy, { user = "root" }) end)
time("evaluate(policy, req)", function() guard.evaluate(policy, request) end)
time("identity + evaluate", function()
	local identity = guard.identity(0)
	request.user, request.groups = identity.user, identity.groups
	guard.evaluate(policy, request)
end)
