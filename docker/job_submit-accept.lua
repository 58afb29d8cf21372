-- job_submit.lua of the test cluster image before the Ansible role runs:
-- it accepts every job, so slurmctld starts with JobSubmitPlugins=lua.
-- The role replaces it with the spank-guard controller check.

function slurm_job_submit(job_desc, part_list, submit_uid)
	return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	return slurm.SUCCESS
end

return slurm.SUCCESS
