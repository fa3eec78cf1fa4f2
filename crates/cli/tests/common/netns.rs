//! Network namespaces for process tests: a small private internet.
//!
//! [`Internet::create`] makes one *router* namespace; each
//! [`Internet::add_host`] makes a host namespace on its own /24 behind it
//! (`10.99.<k>.2`, gateway `10.99.<k>.1`), so hosts reach each other only
//! through the router, as across the internet: no LAN broadcast crosses.
//! Nothing has a route out of these namespaces, so nothing sent in a test can
//! leave them. Dropping the [`Internet`] deletes every namespace it made (and
//! with them the veth pairs); namespaces left by runs that died are swept at
//! the next [`Internet::create`].
#![allow(dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

/// Every namespace made here starts with this, then the test process's pid.
const PREFIX: &str = "swt-";

/// Why namespace tests cannot run here (not root, no `ip`), if they cannot.
/// Tests print it and pass.
pub fn unsupported() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    // Uid: real, effective, saved, fs. Namespaces need the effective one.
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("the `ip` command (iproute2) is missing".into()),
    }
}

/// Runs `ip ARGS`; its stdout, or what went wrong.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Runs a command to completion; its stdout, or its stderr as the error.
pub fn run(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{shown}: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Deletes namespaces of this harness whose test process is gone (a crash or
/// SIGKILL skips `Drop`). Namespaces of live runs and of anyone else stay.
fn sweep_leftovers() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// One namespaced host.
#[derive(Debug, Clone)]
pub struct Host {
    /// The namespace's name.
    pub ns: String,
    /// Its address (on `eth0`).
    pub addr: Ipv4Addr,
    /// The router's address on its subnet.
    pub gateway: Ipv4Addr,
}

impl Host {
    /// `program` to be run inside this host (`ip netns exec NS program`);
    /// `ip netns exec` execs it, so the child is the program itself.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]).arg(program);
        command
    }

    /// Runs `program ARGS` inside this host to completion; its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(self.command(program).args(args))
    }
}

/// A router namespace and the hosts behind it; all deleted on drop.
#[derive(Debug)]
pub struct Internet {
    base: String,
    router: String,
    hosts: Vec<Host>,
}

impl Internet {
    /// A new router namespace `swt-<pid>-<tag>-r` with forwarding on. `tag`
    /// must be unique among the tests of one test binary (they run in
    /// parallel) and short (names of interfaces are derived from indexes, not
    /// from it).
    pub fn create(tag: &str) -> Self {
        sweep_leftovers();
        let base = format!("{PREFIX}{}-{tag}-", std::process::id());
        let router = format!("{base}r");
        let _ = ip(&["netns", "del", &router]);
        // The guard exists before the namespace does, so a failure half-way
        // still cleans up.
        let internet = Self {
            base,
            router,
            hosts: Vec::new(),
        };
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &internet.router])?;
            ip(&["-n", &internet.router, "link", "set", "lo", "up"])?;
            internet.router_exec("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
            Ok(())
        };
        setup().unwrap_or_else(|e| panic!("setting up the router namespace failed: {e}"));
        internet
    }

    /// The router's namespace name.
    pub fn router(&self) -> &str {
        &self.router
    }

    /// Runs `program ARGS` inside the router namespace.
    pub fn router_exec(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.router, program])
            .args(args))
    }

    /// A new host `swt-<pid>-<tag>-<name>` on subnet `10.99.<k>.0/24` (k
    /// counts hosts from 1), its default route through the router.
    pub fn add_host(&mut self, name: &str) -> Host {
        let k = u8::try_from(self.hosts.len() + 1).expect("at most 255 hosts");
        let host = Host {
            ns: format!("{}{name}", self.base),
            addr: Ipv4Addr::new(10, 99, k, 2),
            gateway: Ipv4Addr::new(10, 99, k, 1),
        };
        let _ = ip(&["netns", "del", &host.ns]);
        self.hosts.push(host.clone());
        self.attach(&host, &format!("h{k}"))
            .unwrap_or_else(|e| panic!("setting up host {name} failed: {e}"));
        host
    }

    fn attach(&self, host: &Host, router_side: &str) -> Result<(), String> {
        ip(&["netns", "add", &host.ns])?;
        ip(&[
            "link",
            "add",
            router_side,
            "netns",
            &self.router,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.ns,
        ])?;
        ip(&[
            "-n",
            &self.router,
            "addr",
            "add",
            &format!("{}/24", host.gateway),
            "dev",
            router_side,
        ])?;
        ip(&["-n", &self.router, "link", "set", router_side, "up"])?;
        ip(&[
            "-n",
            &host.ns,
            "addr",
            "add",
            &format!("{}/24", host.addr),
            "broadcast",
            "+",
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &host.ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &host.ns,
            "route",
            "add",
            "default",
            "via",
            &host.gateway.to_string(),
        ])?;
        Ok(())
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = ip(&["netns", "del", &host.ns]);
        }
        let _ = ip(&["netns", "del", &self.router]);
    }
}
