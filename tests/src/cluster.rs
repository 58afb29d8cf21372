//! Starting and stopping the two-node loopback cluster.

use std::ffi::OsStr;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

use crate::command::Output;
use crate::stand_in;
use crate::users::{self, TestUser};

/// Environment variable that overrides the path of the plugin to test.
pub const PLUGIN_ENV: &str = "SPANK_GUARD_PLUGIN";

/// Returns the plugin to test: `$SPANK_GUARD_PLUGIN` when set, otherwise
/// the `libspank_guard.so` that `cargo build -p spank-guard` wrote for the
/// profile of the running executable (`target/<profile>/deps/<test>` or
/// `target/<profile>/examples/<example>`).
pub fn default_plugin_path() -> PathBuf {
    if let Some(path) = std::env::var_os(PLUGIN_ENV) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    profile_dir.join("libspank_guard.so")
}

/// Environment variable that keeps the cluster directory (configuration,
/// daemon logs, audit files) after the cluster stops, for debugging.
pub const KEEP_ENV: &str = "SPANK_GUARD_KEEP_CLUSTER";

/// Parent of the cluster directories. Not under /tmp: the image checks of
/// the policy reject images below a world-writable directory.
const BASE_DIR: &str = "/var/lib/spank-guard-tests";

/// Names of the two slurmd instances.
const NODES: [&str; 2] = ["c1", "c2"];

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Name and state of one node as `sinfo` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// Node name.
    pub name: String,
    /// State, for example `idle`, `drained`.
    pub state: String,
}

struct Daemon {
    name: String,
    child: Child,
}

/// A running private cluster. Dropping it stops every daemon and every
/// slurmstepd it started, and removes its directory.
pub struct Cluster {
    /// Removes the directory when dropped, unless `SPANK_GUARD_KEEP_CLUSTER` is set.
    temp: Option<tempfile::TempDir>,
    root: PathBuf,
    daemons: Vec<Daemon>,
    plugin: PathBuf,
}

impl Cluster {
    /// Starts munged, slurmctld and two slurmd (`c1`, `c2`) on free
    /// loopback ports, with the plugin at `plugin` copied into the cluster
    /// directory and an empty plugstack.conf. Waits until both nodes are idle.
    pub fn start(plugin: &Path) -> Result<Cluster, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the cluster tests must run as root: they start slurmd and switch to test users".into());
        }
        if !plugin.is_file() {
            return Err(format!(
                "plugin {} not found; build it first with `cargo build -p spank-guard` or set {PLUGIN_ENV}",
                plugin.display()
            ));
        }
        users::ensure_users()?;

        fs::create_dir_all(BASE_DIR).map_err(|error| format!("cannot create {BASE_DIR}: {error}"))?;
        let dir = tempfile::Builder::new()
            .prefix("cluster-")
            .tempdir_in(BASE_DIR)
            .map_err(|error| format!("cannot create a directory in {BASE_DIR}: {error}"))?;
        set_mode(dir.path(), 0o755)?;

        let root = dir.path().to_path_buf();
        let mut cluster = Cluster { temp: Some(dir), root, daemons: Vec::new(), plugin: PathBuf::new() };
        cluster.prepare_files(plugin)?;
        cluster.start_daemons()?;
        Ok(cluster)
    }

    /// Root directory of the cluster's files.
    pub fn dir(&self) -> &Path {
        self.root.as_path()
    }

    /// Path of the plugin copy the cluster loads.
    pub fn plugin(&self) -> &Path {
        &self.plugin
    }

    /// Path of `slurm.conf`.
    pub fn slurm_conf(&self) -> PathBuf {
        self.path("etc/slurm.conf")
    }

    /// Returns a path inside the cluster directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.as_path().join(relative)
    }

    /// Path of the stand-in `apptainer` executable.
    pub fn apptainer(&self) -> PathBuf {
        self.path("bin/apptainer")
    }

    /// Directory where the stand-in records its calls.
    pub fn apptainer_calls(&self) -> PathBuf {
        self.path("apptainer-calls")
    }

    /// Working directory of a test user (owned by the user).
    pub fn work_dir(&self, user: &TestUser) -> PathBuf {
        self.path(&format!("work/{}", user.name))
    }

    fn prepare_files(&mut self, plugin: &Path) -> Result<(), String> {
        for (relative, mode) in [
            ("etc", 0o755),
            ("munge", 0o711),
            ("log", 0o755),
            ("run", 0o755),
            ("state", 0o700),
            ("spool", 0o755),
            ("spool/c1", 0o755),
            ("spool/c2", 0o755),
            ("lib", 0o755),
            ("bin", 0o755),
            ("work", 0o755),
            ("apptainer-calls", 0o1777),
        ] {
            let path = self.path(relative);
            fs::create_dir_all(&path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
            set_mode(&path, mode)?;
        }

        // A copy gives slurmd and slurmstepd a file that a rebuild of the
        // plugin cannot change under them.
        self.plugin = self.path("lib/spank_guard.so");
        fs::copy(plugin, &self.plugin).map_err(|error| format!("cannot copy {}: {error}", plugin.display()))?;
        set_mode(&self.plugin, 0o755)?;

        let mut key = vec![0u8; 1024];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut key))
            .map_err(|error| format!("cannot read /dev/urandom for the munge key: {error}"))?;
        write_file(&self.path("munge/munge.key"), &key, 0o400)?;

        write_file(&self.apptainer(), stand_in::script(&self.apptainer_calls().display().to_string()).as_bytes(), 0o755)?;

        for user in users::TEST_USERS {
            let work = self.work_dir(&user);
            fs::create_dir_all(&work).map_err(|error| format!("cannot create {}: {error}", work.display()))?;
            let account = lookup_user(user.name)?;
            chown(&work, Some(account.uid.as_raw()), Some(account.gid.as_raw()))
                .map_err(|error| format!("cannot chown {}: {error}", work.display()))?;
        }

        let ports = free_ports(1 + NODES.len())?;
        let conf = self.slurm_conf_text(&ports)?;
        write_file(&self.slurm_conf(), conf.as_bytes(), 0o644)?;
        self.set_plugstack("")?;
        Ok(())
    }

    fn slurm_conf_text(&self, ports: &[u16]) -> Result<String, String> {
        let dir = self.root.as_path().display();
        let host = nix::unistd::gethostname().map_err(|error| format!("cannot read the host name: {error}"))?;
        let host = host.to_string_lossy();
        let host = host.split('.').next().unwrap_or_default();
        let controller_port = ports.first().copied().unwrap_or_default();
        let mut text = format!(
            "# Throwaway cluster of the spank-guard tests.\n\
             ClusterName=guardtest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={controller_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={dir}/munge/munge.socket\n\
             StateSaveLocation={dir}/state\n\
             SlurmdSpoolDir={dir}/spool/%n\n\
             SlurmctldPidFile={dir}/run/slurmctld.pid\n\
             SlurmdPidFile={dir}/run/slurmd-%n.pid\n\
             SlurmctldLogFile={dir}/log/slurmctld.log\n\
             SlurmdLogFile={dir}/log/slurmd-%n.log\n\
             SlurmdDebug=debug\n\
             SlurmctldDebug=info\n\
             PlugStackConfig={dir}/etc/plugstack.conf\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             SchedulerType=sched/backfill\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SlurmdParameters=config_overrides\n\
             PrologFlags=contain\n\
             ReturnToService=2\n\
             KillWait=2\n\
             MinJobAge=600\n\
             InactiveLimit=0\n\
             MaxArraySize=100\n"
        );
        for (node, port) in NODES.iter().zip(ports.iter().skip(1)) {
            text.push_str(&format!(
                "NodeName={node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=4 RealMemory=1000 State=UNKNOWN\n"
            ));
        }
        text.push_str(&format!("PartitionName=debug Nodes={} Default=YES MaxTime=INFINITE State=UP\n", NODES.join(",")));
        Ok(text)
    }

    /// Rewrites plugstack.conf: with `args` empty it is empty (no plugin),
    /// otherwise it loads the plugin as `required` with `args`. Slurm reads
    /// it at every srun, sbatch, salloc and step launch. Without a
    /// `fallback_audit` argument, `policy_error` records go to
    /// `audit/fallback.jsonl` in the cluster directory, not to the host's
    /// default path.
    pub fn set_plugstack(&self, args: &str) -> Result<(), String> {
        let text = if args.is_empty() {
            String::new()
        } else if args.split_whitespace().any(|arg| arg.starts_with("fallback_audit=")) {
            format!("required {} {args}\n", self.plugin.display())
        } else {
            let fallback = self.path("audit/fallback.jsonl");
            format!("required {} {args} fallback_audit={}\n", self.plugin.display(), fallback.display())
        };
        write_file(&self.path("etc/plugstack.conf"), text.as_bytes(), 0o644)
    }

    /// Writes a root-owned file readable by everyone (0644) inside the
    /// cluster directory, creating parent directories.
    pub fn write_root_file(&self, relative: &str, contents: &[u8]) -> Result<PathBuf, String> {
        self.write_root_file_mode(relative, contents, 0o644)
    }

    /// Writes a root-owned file with `mode` inside the cluster directory,
    /// creating parent directories.
    pub fn write_root_file_mode(&self, relative: &str, contents: &[u8], mode: u32) -> Result<PathBuf, String> {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        }
        write_file(&path, contents, mode)?;
        Ok(path)
    }

    fn start_daemons(&mut self) -> Result<(), String> {
        let dir = self.root.as_path().to_path_buf();
        let mut munged = Command::new("munged");
        munged.args([
            "--foreground",
            "--force",
            &format!("--socket={}/munge/munge.socket", dir.display()),
            &format!("--key-file={}/munge/munge.key", dir.display()),
            &format!("--pid-file={}/munge/munged.pid", dir.display()),
            &format!("--seed-file={}/munge/munged.seed", dir.display()),
            &format!("--log-file={}/log/munged.log", dir.display()),
        ]);
        self.spawn("munged", munged)?;
        self.wait_for("munged socket", |_| dir.join("munge/munge.socket").exists())?;

        let mut slurmctld = Command::new("slurmctld");
        slurmctld.args(["-D", "-i"]);
        self.spawn("slurmctld", slurmctld)?;
        self.wait_for("slurmctld to answer `scontrol ping`", |conf| {
            client(conf, &["scontrol", "ping"]).stdout.contains("is UP")
        })?;

        for node in NODES {
            let mut slurmd = Command::new("slurmd");
            slurmd.args(["-D", "-N", node]);
            self.spawn(&format!("slurmd {node}"), slurmd)?;
        }
        self.wait_for("both nodes to be idle", all_idle)?;
        Ok(())
    }

    fn spawn(&mut self, name: &str, mut command: Command) -> Result<(), String> {
        let log = self.path(&format!("log/{}.out", name.replace(' ', "-")));
        let out = fs::File::create(&log).map_err(|error| format!("cannot create {}: {error}", log.display()))?;
        let err = out.try_clone().map_err(|error| error.to_string())?;
        command.env("SLURM_CONF", self.slurm_conf()).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().map_err(|error| format!("cannot start {name}: {error}"))?;
        self.daemons.push(Daemon { name: name.to_owned(), child });
        Ok(())
    }

    fn wait_for(&mut self, what: &str, mut ready: impl FnMut(&Path) -> bool) -> Result<(), String> {
        let conf = self.slurm_conf();
        let logs = self.path("log");
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if ready(&conf) {
                return Ok(());
            }
            for daemon in &mut self.daemons {
                if let Ok(Some(status)) = daemon.child.try_wait() {
                    return Err(format!(
                        "{} exited with {status} while waiting for {what}; see the logs in {}",
                        daemon.name,
                        logs.display()
                    ));
                }
            }
            sleep(Duration::from_millis(200));
        }
        Err(format!("timed out after {READY_TIMEOUT:?} waiting for {what}; see the logs in {}", logs.display()))
    }

    /// Returns true when every node is idle.
    pub fn idle(&self) -> bool {
        all_idle(&self.slurm_conf())
    }

    /// Returns every node's state from `sinfo`.
    pub fn node_states(&self) -> Vec<NodeState> {
        node_states(&self.slurm_conf())
    }

    /// Waits until every node is idle again (after the jobs of a test ended).
    /// Fails at once when a node is drained or down: a denial must never
    /// take a node out of service.
    pub fn wait_idle(&mut self) -> Result<(), String> {
        let broken: Vec<String> = self
            .node_states()
            .into_iter()
            .filter(|node| ["drain", "drng", "drained", "down", "fail"].iter().any(|state| node.state.starts_with(state)))
            .map(|node| format!("{} {}", node.name, node.state))
            .collect();
        if !broken.is_empty() {
            return Err(format!("nodes out of service: {}; see {}", broken.join(", "), self.path("log").display()));
        }
        self.wait_for("both nodes to be idle", all_idle)
    }

    /// Waits until both nodes are idle, without checking the daemons.
    ///
    /// A node becomes idle only after every slurmstepd of the job has ended,
    /// so the `step_end` audit records, which slurmstepd writes after srun
    /// already returned, are complete once this returns.
    pub fn settle(&self) -> Result<(), String> {
        let conf = self.slurm_conf();
        let start = Instant::now();
        while start.elapsed() < READY_TIMEOUT {
            if all_idle(&conf) {
                return Ok(());
            }
            sleep(Duration::from_millis(100));
        }
        Err(format!("timed out after {READY_TIMEOUT:?} waiting for both nodes to be idle: {:?}", self.node_states()))
    }

    /// Runs a client command as root.
    pub fn root(&self, args: &[&str]) -> Output {
        client(&self.slurm_conf(), args)
    }

    /// Runs `args` as `user` with a clean environment plus `env`, in the
    /// user's working directory. The user's groups are set from the group
    /// database, as a login would.
    pub fn run_as(&self, user: &TestUser, env: &[(&str, &str)], args: &[&str]) -> Output {
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(name, value)| (*name, OsStr::new(*value))).collect();
        self.run_as_os(user, &env, args)
    }

    /// Like [`Cluster::run_as`], with environment values that need not be UTF-8.
    pub fn run_as_os(&self, user: &TestUser, env: &[(&str, &OsStr)], args: &[&str]) -> Output {
        let work = self.work_dir(user);
        let mut command = Command::new("setpriv");
        command
            .args([&format!("--reuid={}", user.name), &format!("--regid={}", user.name), "--init-groups", "--"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &work)
            .env("USER", user.name)
            .env("LOGNAME", user.name)
            .env("SLURM_CONF", self.slurm_conf())
            .current_dir(&work);
        for (name, value) in env {
            command.env(name, value);
        }
        let shown_env: Vec<String> = env
            .iter()
            .map(|(name, value)| {
                let value = value.to_string_lossy();
                if value.len() > 80 {
                    format!("{name}=<{} bytes>", value.len())
                } else {
                    format!("{name}={value}")
                }
            })
            .collect();
        let description = format!("[{}] {} {}", user.name, shown_env.join(" "), args.join(" "));
        Output::capture(&mut command, description.replace("  ", " "))
    }

    /// Stops every process the cluster started. Also done by `drop`.
    pub fn stop(&mut self) {
        // Stop the daemons in reverse start order: slurmd, slurmctld, munged.
        while let Some(mut daemon) = self.daemons.pop() {
            terminate(&mut daemon);
        }
        self.kill_stray_slurmstepd();
    }

    /// Kills slurmstepd processes of this cluster that outlived slurmd.
    /// They carry this cluster's SLURM_CONF in their environment.
    fn kill_stray_slurmstepd(&self) {
        let marker = format!("SLURM_CONF={}", self.slurm_conf().display());
        let Ok(entries) = fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if !cmdline.starts_with(b"slurmstepd") {
                continue;
            }
            let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|&byte| byte == 0).any(|item| item == marker.as_bytes()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os(KEEP_ENV).is_some() {
            if let Some(temp) = self.temp.take() {
                eprintln!("{KEEP_ENV} is set: keeping {}", temp.keep().display());
            }
        }
    }
}

/// Runs a Slurm client command as root against the cluster at `conf`.
fn client(conf: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(args.first().copied().unwrap_or("true"));
    command.args(args.iter().skip(1)).env("SLURM_CONF", conf);
    Output::capture(&mut command, args.join(" "))
}

fn node_states(conf: &Path) -> Vec<NodeState> {
    let output = client(conf, &["sinfo", "--noheader", "--Node", "--format=%N %t"]);
    output
        .stdout
        .lines()
        .filter_map(|line| {
            let (name, state) = line.split_once(' ')?;
            Some(NodeState { name: name.to_owned(), state: state.trim().to_owned() })
        })
        .collect()
}

fn all_idle(conf: &Path) -> bool {
    let states = node_states(conf);
    states.len() == NODES.len() && states.iter().all(|node| node.state == "idle")
}

fn terminate(daemon: &mut Daemon) {
    let Ok(pid) = i32::try_from(daemon.child.id()) else {
        return;
    };
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < STOP_TIMEOUT {
        if let Ok(Some(_)) = daemon.child.try_wait() {
            return;
        }
        sleep(Duration::from_millis(100));
    }
    eprintln!("{} did not stop within {STOP_TIMEOUT:?} after SIGTERM; sending SIGKILL", daemon.name);
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}

fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    // Hold every listener until all ports are chosen so no port repeats.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|error| format!("cannot find a free port: {error}")))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()).map_err(|error| error.to_string()))
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|error| format!("cannot chmod {}: {error}", path.display()))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    // Write a new file and rename it over the old one, so a daemon that is
    // reading the old file never reads a half-written one.
    let temp = path.with_extension("tmp-write");
    fs::write(&temp, contents).map_err(|error| format!("cannot write {}: {error}", temp.display()))?;
    set_mode(&temp, mode)?;
    fs::rename(&temp, path).map_err(|error| format!("cannot rename {} to {}: {error}", temp.display(), path.display()))
}

fn lookup_user(name: &str) -> Result<User, String> {
    User::from_name(name)
        .map_err(|error| format!("cannot look up user {name}: {error}"))?
        .ok_or_else(|| format!("user {name} does not exist"))
}
