//! Feeds arbitrary bytes to the policy loader. Any input must give a policy
//! or a load error, never a panic, and every error must render.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy_core::Policy;

fuzz_target!(|data: &[u8]| {
    match Policy::from_slice(data, "fuzz.json") {
        Ok(policy) => {
            // The accessors the CLI and the plugin print must not panic.
            let _ = (policy.sha256(), policy.version(), policy.mode(), policy.default_environment());
            let _ = (policy.environment_names(), policy.image_set_names(), policy.max_ttl_hours());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
