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

/// How a NAT gateway picks the public port of an outgoing flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Keeps the inside port when it can, the same for every destination (a
    /// "full cone" / endpoint-independent mapping: hole punching works).
    EndpointIndependent,
    /// A new random port per destination (symmetric NAT: punching fails).
    Symmetric,
}

/// A router namespace and the hosts behind it; all deleted on drop.
#[derive(Debug)]
pub struct Internet {
    base: String,
    router: String,
    hosts: Vec<Host>,
}

impl Internet {
    /// A new router namespace `swt-<pid>-<tag>-router` with forwarding on. `tag`
    /// must be unique among the tests of one test binary (they run in
    /// parallel) and short (names of interfaces are derived from indexes, not
    /// from it).
    pub fn create(tag: &str) -> Self {
        sweep_leftovers();
        let base = format!("{PREFIX}{}-{tag}-", std::process::id());
        // Host namespaces are `<base>h-<name>`, so no host can take this name.
        let router = format!("{base}router");
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

    /// A new host `swt-<pid>-<tag>-h-<name>` on subnet `10.99.<k>.0/24` (k
    /// counts hosts from 1), its default route through the router.
    pub fn add_host(&mut self, name: &str) -> Host {
        let k = u8::try_from(self.hosts.len() + 1).expect("at most 255 hosts");
        let host = Host {
            ns: format!("{}h-{name}", self.base),
            addr: Ipv4Addr::new(10, 99, k, 2),
            gateway: Ipv4Addr::new(10, 99, k, 1),
        };
        let _ = ip(&["netns", "del", &host.ns]);
        self.hosts.push(host.clone());
        self.attach(&host, &format!("h{k}"))
            .unwrap_or_else(|e| panic!("setting up host {name} failed: {e}"));
        host
    }

    /// A home network: a NAT gateway `<name>-gw` on the internet
    /// (`10.99.<k>.2`) and, behind it, the host `<name>` on
    /// `192.168.<k>.2/24`. The gateway masquerades (Linux keeps the source
    /// port when it can: an endpoint-independent mapping) and forwards
    /// inward only what answers a flow from inside (conntrack filtering), as
    /// home routers do. Unsolicited packets to the gateway itself are dropped
    /// too (as a router's firewall does), so they leave no conntrack entry
    /// that would take the port a later outbound flow needs. Returns the inner host; its public address is the
    /// gateway's.
    pub fn add_nat_site(&mut self, name: &str) -> (Host, Host) {
        self.add_nat_site_mapped(name, Mapping::EndpointIndependent)
    }

    /// [`Internet::add_nat_site`] with the gateway's port `mapping` chosen.
    pub fn add_nat_site_mapped(&mut self, name: &str, mapping: Mapping) -> (Host, Host) {
        let gateway = self.add_host(&format!("{name}-gw"));
        let k = gateway.addr.octets()[2];
        let inner = Host {
            ns: format!("{}h-{name}", self.base),
            addr: Ipv4Addr::new(192, 168, k, 2),
            gateway: Ipv4Addr::new(192, 168, k, 1),
        };
        let _ = ip(&["netns", "del", &inner.ns]);
        self.hosts.push(inner.clone());
        self.nat(&gateway, &inner, mapping)
            .unwrap_or_else(|e| panic!("setting up the NAT site {name} failed: {e}"));
        (inner, gateway)
    }

    fn nat(&self, gateway: &Host, inner: &Host, mapping: Mapping) -> Result<(), String> {
        ip(&["netns", "add", &inner.ns])?;
        ip(&[
            "link",
            "add",
            "lan0",
            "netns",
            &gateway.ns,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &inner.ns,
        ])?;
        ip(&[
            "-n",
            &gateway.ns,
            "addr",
            "add",
            &format!("{}/24", inner.gateway),
            "dev",
            "lan0",
        ])?;
        ip(&["-n", &gateway.ns, "link", "set", "lan0", "up"])?;
        ip(&[
            "-n",
            &inner.ns,
            "addr",
            "add",
            &format!("{}/24", inner.addr),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &inner.ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &inner.ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &inner.ns,
            "route",
            "add",
            "default",
            "via",
            &inner.gateway.to_string(),
        ])?;
        gateway.exec("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        let masquerade = match mapping {
            Mapping::EndpointIndependent => "masquerade",
            // A fresh random public port for every new flow (5-tuple): what the
            // tracker saw is not what a peer would see, so punching cannot work.
            Mapping::Symmetric => "masquerade fully-random",
        };
        let rules = format!(
            "table ip nat {{\n chain postrouting {{\n  type nat hook postrouting priority 100;\n  oifname \"eth0\" {masquerade}\n }}\n}}\n\
                     table inet filter {{\n chain forward {{\n  type filter hook forward priority 0; policy drop;\n  ct state established,related accept\n  iifname \"lan0\" oifname \"eth0\" accept\n }}\n \
                     chain input {{\n  type filter hook input priority 0; policy drop;\n  ct state established,related accept\n  iifname \"lo\" accept\n  iifname \"lan0\" accept\n }}\n}}\n"
        );
        let mut nft = gateway.command("nft");
        nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
        let mut child = nft.spawn().map_err(|e| format!("nft: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().ok_or("nft: no stdin")?;
            stdin
                .write_all(rules.as_bytes())
                .map_err(|e| format!("nft: {e}"))?;
        }
        let status = child.wait().map_err(|e| format!("nft: {e}"))?;
        if !status.success() {
            return Err(format!("nft -f on {} failed: {status}", gateway.ns));
        }
        Ok(())
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
