//! Helpers shared by the benchmark programs in `examples/`.

use std::time::Duration;

/// Sorts `samples` and returns their median. For an even count it is the
/// mean of the two middle values, and for no samples it is zero.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    let middle = samples.len() / 2;
    if samples.len() % 2 == 0 && middle > 0 {
        (samples[middle - 1] + samples[middle]) / 2
    } else {
        samples.get(middle).copied().unwrap_or_default()
    }
}

/// Returns the CPU model, logical CPU count, memory and kernel release from
/// `/proc`, for the machine line of a benchmark record.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|line| line.strip_prefix("model name")).map(|rest| rest.trim_start_matches([' ', '\t', ':'])).unwrap_or("unknown CPU");
    let cores = cpuinfo.lines().filter(|line| line.starts_with("processor")).count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} logical CPUs, {:.0} GiB RAM, Linux {}",
        memory_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}
