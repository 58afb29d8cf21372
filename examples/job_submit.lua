--[[
spank-guard policy check in slurmctld (job_submit/lua).

slurmctld runs slurm_job_submit for every sbatch, salloc and srun job
request, before the job is queued. This script evaluates the request
against the same policy file as the SPANK plugin on the nodes and rejects a
denied job at once; sbatch prints every reason and the correlation id.

Install on the controller:
  1. Build the module (`cargo build --release -p spank-guard-lua`) and copy
     target/release/libspank_guard_lua.so to a directory on Lua 5.1's
     package.cpath as spank_guard.so, for example
     /usr/local/lib/lua/5.1/spank_guard.so. The SPANK plugin is also called
     spank_guard.so but lives in Slurm's PluginDir; the two files differ.
  2. Copy this script as job_submit.lua next to slurm.conf
     (/etc/slurm/job_submit.lua on Debian) and adjust the settings below.
  3. Set JobSubmitPlugins=lua in slurm.conf and run `scontrol reconfigure`.

The policy file must be owned by root and not writable by group or others.
slurmctld stats it at every submission and reloads it only when it changed.
Rules that need the compute node (image files and digests, bind sources,
the node list) are deferred: the node checks them when the job starts.
--]]

-- Policy file, the same as `policy=` in plugstack.conf.
local POLICY = "/etc/slurm/spank-guard/policy.json"

-- What happens when the policy cannot be used (missing, malformed, not
-- owned by root, writable by others) or the module cannot be loaded:
--   "deny"  (fail closed) rejects every job with policy.invalid;
--   "allow" (fail open) accepts jobs and logs the error; the nodes still
--           enforce their own copy of the policy.
local ON_POLICY_ERROR = "deny"

-- Cluster name used in correlation ids minted here (ClusterName in slurm.conf).
local CLUSTER = "cluster"

-- Show the correlation id to the user for accepted jobs too
-- ("spank-guard: correlation id: ID" in sbatch's output).
local SHOW_CORRELATION_ID = true

-- Directory holding spank_guard.so when it is not on the default
-- package.cpath; nil keeps the default search path.
local MODULE_DIR = nil

local PREFIX = "spank-guard: "
local PLUGIN_OPTION_PREFIX = "_SLURM_SPANK_OPTION_spank_guard_"
local NO_VAL = slurm.NO_VAL or 4294967294
local INFINITE = slurm.INFINITE or 4294967295

-- Values of spank_job_env that the request takes as job environment: the
-- plugin copies them there because slurmctld cannot read the job's
-- environment in job_submit/lua.
local FORWARDED_VARIABLES = {
	HOS_CORRELATION_ID = true,
	HOS_ENV = true,
	HOS_JUSTIFICATION = true,
	HOS_APPROVAL_TICKET = true,
	SPANK_GUARD_BIND_OPTIONS = true,
	SPANK_GUARD_CONTAINER_FLAG_OPTIONS = true,
}

-- Request field for each --guard-* option; lists take repeated options.
local OPTION_FIELDS = {
	guard_env = "env",
	guard_justification = "justification",
	guard_ticket = "ticket",
	guard_image = "image",
	guard_bind = "binds",
	guard_container_flags = "container_flags",
	guard_break_glass = "break_glass",
}
local LIST_FIELDS = { binds = true, container_flags = true }

if MODULE_DIR ~= nil then
	package.cpath = MODULE_DIR .. "/?.so;" .. package.cpath
end
local module_loaded, guard = pcall(require, "spank_guard")

-- Splits the NAME=VALUE entries of spank_job_env into options and variables.
local function read_spank_job_env(job_desc)
	local options, env = {}, {}
	local entries = job_desc.spank_job_env
	if entries == nil then
		return options, env
	end
	-- Slurm 22.05 passes a table indexed from 0, so pairs and not ipairs.
	for _, entry in pairs(entries) do
		local name, value = string.match(entry, "^([^=]+)=(.*)$")
		if name ~= nil then
			local option = string.match(name, "^" .. PLUGIN_OPTION_PREFIX .. "(.+)$")
			local field = option and OPTION_FIELDS[option]
			if field ~= nil and LIST_FIELDS[field] then
				options[field] = { value }
			elseif field ~= nil then
				options[field] = value
			elseif FORWARDED_VARIABLES[name] then
				env[name] = value
			end
		end
	end
	-- The relayed lists hold every repeated --guard-bind and
	-- --guard-container-flags; the option entry holds only the last one.
	if env.SPANK_GUARD_BIND_OPTIONS ~= nil then
		options.binds = { env.SPANK_GUARD_BIND_OPTIONS }
	end
	if env.SPANK_GUARD_CONTAINER_FLAG_OPTIONS ~= nil then
		options.container_flags = { env.SPANK_GUARD_CONTAINER_FLAG_OPTIONS }
	end
	return options, env
end

-- Returns the partition the job will run in: the first one it names, else
-- the default partition.
local function find_partition(job_desc, part_list)
	if part_list == nil then
		return nil
	end
	local requested = job_desc.partition
	if requested ~= nil then
		requested = string.match(requested, "^([^,]+)")
	end
	for _, partition in pairs(part_list) do
		if requested ~= nil and partition.name == requested then
			return partition
		end
		if requested == nil and partition.flag_default == 1 then
			return partition
		end
	end
	return nil
end

-- Returns the job's time limit in minutes as Slurm will set it: --time,
-- else the partition's DefaultTime, else its MaxTime. INFINITE means no
-- limit; nil when unknown.
local function time_limit_minutes(job_desc, part_list)
	local limit = job_desc.time_limit
	if limit ~= nil and limit ~= NO_VAL then
		return limit
	end
	local partition = find_partition(job_desc, part_list)
	if partition == nil then
		return nil
	end
	for _, value in ipairs({ partition.default_time, partition.max_time }) do
		if value ~= nil and value ~= NO_VAL then
			return value
		end
	end
	return nil
end

local function build_request(job_desc, part_list, submit_uid)
	local identity, err = guard.identity(submit_uid)
	if identity == nil then
		return nil, err
	end
	local options, env = read_spank_job_env(job_desc)
	return {
		cluster = CLUSTER,
		uid = submit_uid,
		user = identity.user,
		groups = identity.groups,
		options = options,
		env = env,
		job_name = job_desc.name,
		time_limit_minutes = time_limit_minutes(job_desc, part_list),
	}
end

-- Shows a line to the user. Line breaks become spaces and other control
-- characters U+FFFD, so a value cannot send terminal escape sequences.
local function tell_user(line)
	local cleaned = string.gsub(string.gsub(line, "[\r\n]", " "), "%c", "\239\191\189")
	slurm.log_user("%s", cleaned)
end

-- Applies ON_POLICY_ERROR to an error that prevented a decision. The
-- correlation id is the one the plugin minted, when there is one.
local function policy_error(message, job_desc, submit_uid)
	local ok, _, env = pcall(read_spank_job_env, job_desc)
	local correlation_id = ok and env.HOS_CORRELATION_ID or "(none)"
	slurm.log_error("%s", string.format(
		"%spolicy not usable, on_policy_error=%s: correlation_id=%s uid=%s: %s",
		PREFIX, ON_POLICY_ERROR, correlation_id, tostring(submit_uid), message
	))
	if ON_POLICY_ERROR == "allow" then
		return slurm.SUCCESS
	end
	tell_user(PREFIX .. "denied: policy.invalid: " .. message)
	tell_user(PREFIX .. "correlation id: " .. correlation_id)
	return slurm.ERROR
end

-- Returns a value fit for one key=value field of a log line: control
-- characters (a newline would start a forged line) and spaces become `_`.
local function log_field(value)
	return (string.gsub(tostring(value), "[%c ]", "_"))
end

local function log_decision(decision, request, job_desc)
	local rules = {}
	for _, reason in ipairs(decision.reasons) do
		table.insert(rules, reason.rule)
	end
	slurm.log_info("%s", string.format(
		"%scontroller decision: outcome=%s correlation_id=%s user=%s uid=%d environment=%s rules=%s deferred=%s account=%s partition=%s job_name=%s",
		PREFIX,
		decision.outcome,
		log_field(decision.correlation_id),
		log_field(request.user),
		request.uid,
		log_field(decision.environment),
		table.concat(rules, ","),
		table.concat(decision.deferred, ","),
		log_field(job_desc.account),
		log_field(job_desc.partition),
		log_field(job_desc.name)
	))
end

-- Shows the same break-glass warnings as the plugin does in srun and sbatch.
local function report_break_glass(decision, request)
	local reason = request.options.break_glass
	if reason == nil then
		return
	end
	local waived = decision.waived or {}
	local rules = {}
	for _, rule in ipairs(waived) do
		table.insert(rules, rule.rule)
	end
	if decision.break_glass then
		slurm.log_info("%s", string.format(
			"%scontroller BREAK GLASS: correlation_id=%s user=%s environment=%s waived=%s reason=%s",
			PREFIX,
			log_field(decision.correlation_id),
			log_field(request.user),
			log_field(decision.environment),
			table.concat(rules, ","),
			log_field(reason)
		))
		tell_user(string.format(
			"%sWARNING: BREAK GLASS by user `%s` in environment `%s`: %s",
			PREFIX, request.user, tostring(decision.environment), reason
		))
		for _, rule in ipairs(waived) do
			tell_user(PREFIX .. "WARNING: BREAK GLASS waives " .. rule.rule .. ": " .. rule.message)
		end
		tell_user(PREFIX .. "WARNING: BREAK GLASS: every step that runs this way is recorded in the audit log and reviewed by the administrators")
		return
	end
	local failing, rejected = {}, false
	for _, failed in ipairs(decision.reasons) do
		table.insert(failing, failed.rule)
		rejected = rejected or string.match(failed.rule, "^break_glass%.") ~= nil
	end
	if not rejected and decision.outcome ~= "deny" then
		tell_user(PREFIX .. "break glass not needed: the window and approval rules pass without it; remove --guard-break-glass")
		return
	end
	if rejected then
		-- A rejected attempt never reaches a node, so slurmctld's log is its only record.
		slurm.log_info("%s", string.format(
			"%scontroller BREAK GLASS rejected: correlation_id=%s user=%s environment=%s rules=%s reason=%s",
			PREFIX,
			log_field(decision.correlation_id),
			log_field(request.user),
			log_field(decision.environment),
			table.concat(failing, ","),
			log_field(reason)
		))
	end
	if #rules > 0 then
		tell_user(string.format(
			"%sbreak glass would waive %s, but the other rules still deny the request",
			PREFIX, table.concat(rules, ", ")
		))
	end
end

local function check(job_desc, part_list, submit_uid)
	if not module_loaded then
		-- require's message goes on to list every path it tried, one per line.
		local first_line = string.gsub(string.match(tostring(guard), "^[^\n]*"), ":$", "")
		return policy_error(
			"cannot load the spank_guard Lua module (" .. first_line .. "); "
				.. "install spank_guard.so in a package.cpath directory or set MODULE_DIR in job_submit.lua",
			job_desc,
			submit_uid
		)
	end
	local request, request_err = build_request(job_desc, part_list, submit_uid)
	if request == nil then
		return policy_error(request_err, job_desc, submit_uid)
	end
	local decision, err = guard.evaluate(POLICY, request)
	if decision == nil then
		return policy_error(err, job_desc, submit_uid)
	end

	log_decision(decision, request, job_desc)
	report_break_glass(decision, request)
	if decision.outcome == "allow" then
		if SHOW_CORRELATION_ID then
			tell_user(PREFIX .. "correlation id: " .. decision.correlation_id)
		end
		return slurm.SUCCESS
	end
	local verdict = "denied: "
	if decision.outcome == "would_deny" then
		verdict = "audit mode, would deny: "
	end
	for _, reason in ipairs(decision.reasons) do
		tell_user(PREFIX .. verdict .. reason.rule .. ": " .. reason.message)
	end
	tell_user(PREFIX .. "correlation id: " .. decision.correlation_id)
	if decision.outcome == "deny" then
		return slurm.ERROR
	end
	return slurm.SUCCESS
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	-- A Lua error here would reject the job with a generic message, so it is
	-- caught and handled like a policy error.
	local ok, result = pcall(check, job_desc, part_list, submit_uid)
	if not ok then
		return policy_error("internal error in job_submit.lua: " .. tostring(result), job_desc, submit_uid)
	end
	return result
end

-- Checks a new time limit of a pending break-glass job against
-- break_glass.max_minutes, so that `scontrol update TimeLimit=` cannot lift it.
-- root may change any limit.
local function check_modify(job_desc, job_rec, modify_uid)
	local limit = job_desc.time_limit
	if limit == nil or limit == NO_VAL or modify_uid == 0 then
		return slurm.SUCCESS
	end
	local options = read_spank_job_env(job_rec)
	if options.break_glass == nil then
		return slurm.SUCCESS
	end
	if not module_loaded then
		return policy_error("cannot load the spank_guard Lua module to check the new time limit", job_rec, modify_uid)
	end
	local request, request_err = build_request(job_rec, nil, job_rec.user_id)
	if request == nil then
		return policy_error(request_err, job_rec, modify_uid)
	end
	request.time_limit_minutes = limit
	local decision, err = guard.evaluate(POLICY, request)
	if decision == nil then
		return policy_error(err, job_rec, modify_uid)
	end
	for _, reason in ipairs(decision.reasons) do
		if reason.rule == "break_glass.duration" then
			-- Slurm 22.05 discards log_user messages in job_modify, so scontrol
			-- shows only "Unspecified error" and the reason goes to the log.
			slurm.log_info("%s", string.format(
				"%scontroller BREAK GLASS rejected: correlation_id=%s user=%s environment=%s rules=break_glass.duration update_uid=%d time_limit=%d: %s",
				PREFIX,
				log_field(decision.correlation_id),
				log_field(request.user),
				log_field(decision.environment),
				modify_uid,
				limit,
				reason.message
			))
			return slurm.ERROR
		end
	end
	return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	-- NOTE: only the time limit of break-glass jobs is checked on update;
	-- the node still checks every step when it starts.
	local ok, result = pcall(check_modify, job_desc, job_rec, modify_uid)
	if not ok then
		return policy_error("internal error in job_submit.lua: " .. tostring(result), job_rec, modify_uid)
	end
	return result
end

return slurm.SUCCESS
