//! `swarmsync sync` behind a UPnP gateway (issue #8): Debian's `miniupnpd`
//! in a "gateway" namespace between a "home" host (private subnet,
//! masqueraded, unsolicited inbound dropped unless miniupnpd's chain accepts
//! it) and a "wan" host on the public side. The home peer maps its port with
//! UPnP, the wan peer reaches it only through that mapping, and the mapping
//! is gone once the home peer exits on SIGTERM; restarted with `--no-upnp`,
//! the home peer is not reachable (the control). Skipped (passing, with a
//! message) when not root or without `ip`, `nft` or `miniupnpd`.
//!
//! Everything stays inside the three namespaces: the SSDP multicast reaches
//! only the gateway's LAN side, and nothing has a route further.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Host, ip, run};
use common::{Node, noise, printed_secret, wait_same};
use daemon::status::{FolderStatus, PortMappingStatus};

/// The port `Node::start_in` listens on.
const PORT: u16 = 41_544;
/// The third octet of both subnets (home `10.233.K.0/24`, WAN
/// `198.20.K.0/24`).
const K: u8 = 7;
/// Bound on one wait (a bound, not a measurement).
const WAIT: Duration = Duration::from_secs(60);
/// Bound on the mapping being gone after SIGTERM.
const REMOVED_WITHIN: Duration = Duration::from_secs(10);

/// Why this test cannot run here, if it cannot.
fn unsupported() -> Option<String> {
    if let Some(why) = netns::unsupported() {
        return Some(why);
    }
    for (tool, arg, package) in [
        ("nft", "--version", "nftables"),
        ("miniupnpd", "--version", "miniupnpd-nftables"),
    ] {
        match Command::new(tool).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            _ => return Some(format!("`{tool}` is missing (Debian package {package})")),
        }
    }
    None
}

/// The gateway, home and wan namespaces and miniupnpd; all gone on drop.
struct Lab {
    gw: Host,
    home: Host,
    wan: Host,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Lab {
    /// Home `10.233.K.2/24` behind the gateway's `.1`; the gateway's WAN side
    /// `198.20.K.1/24`, the wan host `.2`. The WAN range is just outside
    /// 198.18.0.0/15: miniupnpd refuses to forward when its external address
    /// is in a reserved range.
    fn create() -> Self {
        // `swt-<pid>-…`: the harness sweeps what a crashed run leaves.
        let base = format!("swt-{}-upnp-", std::process::id());
        let host = |name: &str, addr: Ipv4Addr, gateway: Ipv4Addr| Host {
            ns: format!("{base}{name}"),
            addr,
            gateway,
        };
        let mut lab = Self {
            gw: host(
                "g",
                Ipv4Addr::new(198, 20, K, 1),
                Ipv4Addr::new(198, 20, K, 1),
            ),
            home: host(
                "h",
                Ipv4Addr::new(10, 233, K, 2),
                Ipv4Addr::new(10, 233, K, 1),
            ),
            wan: host(
                "w",
                Ipv4Addr::new(198, 20, K, 2),
                Ipv4Addr::new(198, 20, K, 1),
            ),
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        // The guard exists before the namespaces do: a failure half-way
        // still cleans up.
        lab.setup()
            .unwrap_or_else(|e| panic!("setting up the gateway lab failed: {e}"));
        lab
    }

    fn gw_lan_ip(&self) -> Ipv4Addr {
        self.home.gateway
    }

    fn gw_wan_ip(&self) -> Ipv4Addr {
        self.gw.addr
    }

    /// Where the wan host dials the home peer: the gateway's public side.
    fn public(&self) -> String {
        format!("{}:{PORT}", self.gw_wan_ip())
    }

    fn setup(&mut self) -> Result<(), String> {
        let (gw, home, wan) = (
            self.gw.ns.clone(),
            self.home.ns.clone(),
            self.wan.ns.clone(),
        );
        for ns in [&gw, &home, &wan] {
            let _ = ip(&["netns", "del", ns]);
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        for (side, host) in [("lan0", &home), ("wan0", &wan)] {
            ip(&[
                "link", "add", side, "netns", &gw, "type", "veth", "peer", "name", "eth0", "netns",
                host,
            ])?;
            ip(&["-n", &gw, "link", "set", side, "up"])?;
            ip(&["-n", host, "link", "set", "eth0", "up"])?;
        }
        let addr = |ns: &str, a: String, dev: &str| ip(&["-n", ns, "addr", "add", &a, "dev", dev]);
        addr(&gw, format!("{}/24", self.gw_lan_ip()), "lan0")?;
        addr(&gw, format!("{}/24", self.gw_wan_ip()), "wan0")?;
        addr(&home, format!("{}/24", self.home.addr), "eth0")?;
        addr(&wan, format!("{}/24", self.wan.addr), "eth0")?;
        for host in [&self.home, &self.wan] {
            ip(&[
                "-n",
                &host.ns,
                "route",
                "add",
                "default",
                "via",
                &host.gateway.to_string(),
            ])?;
        }
        self.gw
            .exec("sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        // A home router: masquerade out, drop unsolicited inbound unless
        // miniupnpd's chain accepts it; miniupnpd fills the three empty
        // chains and expects them to exist.
        let rules = "table inet swsync {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname \"lan0\" accept
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname \"wan0\" masquerade
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting_miniupnpd {
  }
}
";
        let rules_path = self.dir.path().join("rules.nft");
        fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
        run(self.gw.command("nft").arg("-f").arg(&rules_path))?;
        let conf = format!(
            "ext_ifname=wan0
listening_ip=lan0
http_port=0
enable_upnp=yes
enable_natpmp=yes
secure_mode=yes
system_uptime=no
min_lifetime=1
uuid=3e2a1f5c-6d0b-4a8e-9c7f-2b1d4e5f6b{K:02x}
upnp_table_name=swsync
upnp_nat_table_name=swsync
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 10.233.{K}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
"
        );
        let conf_path = self.dir.path().join("miniupnpd.conf");
        fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log = fs::File::create(self.log_path()).map_err(|e| e.to_string())?;
        let daemon = self
            .gw
            .command("miniupnpd")
            .arg("-d")
            .arg("-f")
            .arg(&conf_path)
            // Its own pid file: the default one would stop a second instance.
            .arg("-P")
            .arg(self.dir.path().join("miniupnpd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting miniupnpd: {e}"))?;
        self.daemon = Some(daemon);
        // Its sockets are open once it says so (the last line of its
        // start-up); a peer started earlier could find only what is already
        // listening (PCP but no UPnP yet), or nothing and look again only
        // much later.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log().contains("Listening for NAT-PMP/PCP traffic") {
            if Instant::now() > deadline {
                return Err(format!("miniupnpd did not start:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("miniupnpd.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// miniupnpd's rules for the home peer's port, one line each: its DNAT
    /// rules (`prerouting_miniupnpd`) and its forward accepts
    /// (`miniupnpd`).
    fn rules(&self) -> (Vec<String>, Vec<String>) {
        let to = format!("{}:{PORT}", self.home.addr);
        let dnat = self
            .chain("prerouting_miniupnpd")
            .into_iter()
            .filter(|l| l.contains("dnat") && l.contains(&to))
            .collect();
        // nft shows these with the address as raw payload
        // (`th dport 41544 @nh,128,32 0xae90702 … accept`).
        let home = format!("{:#x}", u32::from(self.home.addr));
        let dport = format!("dport {PORT} ");
        let forward = self
            .chain("miniupnpd")
            .into_iter()
            .filter(|l| l.contains(&dport) && l.contains(&home) && l.contains("accept"))
            .collect();
        (dnat, forward)
    }

    fn chain(&self, name: &str) -> Vec<String> {
        self.gw
            .exec("nft", &["list", "chain", "inet", "swsync", name])
            .unwrap()
            .lines()
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for host in [&self.home, &self.wan, &self.gw] {
            let _ = ip(&["netns", "del", &host.ns]);
        }
    }
}

fn status(node: &Node) -> Option<FolderStatus> {
    FolderStatus::read(&node.dir.join(".sync"))
}

fn mapping(node: &Node) -> Option<PortMappingStatus> {
    status(node).and_then(|s| s.network.port_mapping)
}

/// `(address, found_by)` of each connected peer.
fn peers(node: &Node) -> Vec<(String, String)> {
    status(node)
        .map(|s| {
            s.peers
                .into_iter()
                .map(|p| (p.address, p.found_by))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `done` holds, or fails after `limit` showing `what`, the
/// nodes' logs and miniupnpd's.
fn wait_for(
    what: &str,
    limit: Duration,
    lab: &Lab,
    nodes: &[&Node],
    mut done: impl FnMut() -> bool,
) {
    let start = Instant::now();
    loop {
        if done() {
            return;
        }
        if start.elapsed() >= limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs: String = nodes
        .iter()
        .map(|n| format!("\n--- {}\n{}", n.dir.display(), n.plain_log()))
        .collect();
    panic!(
        "timed out ({limit:?}) waiting for: {what}{logs}\n--- miniupnpd\n{}",
        lab.log()
    );
}

#[test]
fn upnp_mapping_makes_the_peer_reachable_and_is_removed_on_exit() {
    let test = "upnp_mapping_makes_the_peer_reachable_and_is_removed_on_exit";
    if let Some(why) = unsupported() {
        eprintln!("skipping {test}: {why}");
        return;
    }
    let started = Instant::now();
    // Declared first, dropped last: the nodes stop before their namespaces go.
    let lab = Lab::create();
    let tmp = tempfile::tempdir().unwrap();
    let (home_dir, wan_dir) = (tmp.path().join("home"), tmp.path().join("wan"));
    fs::create_dir_all(home_dir.join("sub")).unwrap();
    fs::write(home_dir.join("hello.txt"), b"hello from home").unwrap();
    fs::write(home_dir.join("sub/big.bin"), noise(1 << 20, 8)).unwrap();
    fs::write(home_dir.join("sub/empty"), b"").unwrap();

    // 1. The home peer maps its port: UPnP, the gateway's public address,
    // our port number (it was free), TCP and UDP.
    let only_direct = ["--no-lan", "--no-tracker", "--no-dht", "--no-pex"];
    let mut home = Node::start_in(&lab.home, &home_dir, &only_direct);
    let secret = printed_secret(&home);
    let public = lab.public();
    wait_for(
        &format!("a UPnP mapping to {public} in the home peer's status"),
        WAIT,
        &lab,
        &[&home],
        || {
            mapping(&home).is_some_and(|m| {
                m.protocol.as_deref() == Some("upnp") && m.tcp.as_deref() == Some(public.as_str())
            })
        },
    );
    let m = mapping(&home).unwrap();
    eprintln!("{test}: home's mapping {m:?}");
    assert_eq!(m.udp.as_deref(), Some(public.as_str()), "{m:?}");
    assert_eq!(
        m.gateway.as_deref(),
        Some(lab.gw_lan_ip().to_string().as_str()),
        "{m:?}"
    );
    assert!(m.lease_secs.is_some(), "{m:?}");
    // `swarmsync status --json` says the same.
    let out = Command::new(common::bin())
        .args(["status", &home_dir.display().to_string(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = &report["network"]["port_mapping"];
    assert_eq!(shown["protocol"], "upnp", "{report:#}");
    assert_eq!(shown["tcp"], public.as_str(), "{report:#}");
    assert_eq!(shown["udp"], public.as_str(), "{report:#}");
    // On the gateway: TCP and UDP forwarded to the home host.
    let (dnat, forward) = lab.rules();
    assert_eq!(dnat.len(), 2, "TCP and UDP DNAT to home: {dnat:?}");
    assert_eq!(
        forward.len(),
        2,
        "TCP and UDP let through: {forward:?} of {:?}",
        lab.chain("miniupnpd")
    );

    // 2. The wan peer, told only the gateway's public address, gets the
    // folder through the mapping (the gateway drops unsolicited inbound
    // traffic that miniupnpd's chain does not accept).
    let wan_args = [
        &only_direct[..],
        &["--no-upnp", "--secret", &secret, "--known-host", &public],
    ]
    .concat();
    let wan = Node::start_in(&lab.wan, &wan_dir, &wan_args);
    wait_same(&[&home, &wan]);
    assert_eq!(home.tree(), wan.tree());
    assert_eq!(
        wan.tree()["sub/big.bin"].len(),
        1 << 20,
        "the big file arrived"
    );
    wait_for(
        &format!("the home peer connected at {public} in the wan peer's status"),
        WAIT,
        &lab,
        &[&home, &wan],
        || {
            peers(&wan)
                .iter()
                .any(|(addr, by)| addr == &public && by == "known")
        },
    );
    // Inbound through DNAT: the home peer sees the wan host's own address.
    let wan_ip = lab.wan.addr.to_string();
    wait_for(
        "the wan peer connected (incoming) in the home peer's status",
        WAIT,
        &lab,
        &[&home, &wan],
        || {
            peers(&home)
                .iter()
                .any(|(addr, by)| addr.starts_with(&format!("{wan_ip}:")) && by == "incoming")
        },
    );
    eprintln!(
        "{test}: wan sees {:?}, home sees {:?}",
        peers(&wan),
        peers(&home)
    );
    // The wan peer maps nothing.
    assert!(mapping(&wan).is_none(), "{:?}", mapping(&wan));

    // 3. SIGTERM: the home peer exits and removes its mapping, within the
    // bound.
    let pid = home.pid().unwrap();
    let asked = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM {pid}: {killed}");
    while home.is_running() {
        assert!(
            asked.elapsed() < REMOVED_WITHIN,
            "the home peer did not exit within {REMOVED_WITHIN:?} of SIGTERM:\n{}",
            home.plain_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = asked.elapsed();
    wait_for(
        "miniupnpd's rules for the home peer to be removed",
        REMOVED_WITHIN.saturating_sub(asked.elapsed()),
        &lab,
        &[&home],
        || {
            let (dnat, forward) = lab.rules();
            dnat.is_empty() && forward.is_empty()
        },
    );
    eprintln!(
        "{test}: exited {exited:?} after SIGTERM, rules gone after {:?}",
        asked.elapsed()
    );
    assert!(asked.elapsed() <= REMOVED_WITHIN, "{:?}", asked.elapsed());
    let log = home.plain_log();
    assert!(!log.contains("panicked"), "{log}");
    drop(home);

    // 4. The control: the same home peer without a mapping (`--no-upnp`) is
    // not reachable; a fresh wan peer, which reached it at once above, gets
    // nothing: its first dial fails.
    drop(wan);
    let home = Node::start_in(
        &lab.home,
        &home_dir,
        &[&only_direct[..], &["--no-upnp"]].concat(),
    );
    wait_for(
        "the home peer running again, without a mapping",
        WAIT,
        &lab,
        &[&home],
        || {
            status(&home)
                .is_some_and(|s| s.network.port_mapping.is_none() && !s.network.listen.is_empty())
        },
    );
    assert_eq!(lab.rules(), (vec![], vec![]));
    let wan_dir = tmp.path().join("wan2");
    let wan = Node::start_in(&lab.wan, &wan_dir, &wan_args);
    // Until its first dial has failed (the gateway itself refuses TCP to a
    // port it does not forward; QUIC times out), and a little longer.
    let dial_failed = |n: &Node| {
        n.plain_log()
            .lines()
            .any(|l| l.contains("dial failed") && l.contains(&format!("addr={public}")))
    };
    let control = Instant::now();
    let mut failed_at = None;
    while failed_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(1)) {
        assert!(
            peers(&wan).is_empty() && wan.tree().is_empty(),
            "reached without a mapping: {:?}, {:?}",
            peers(&wan),
            wan.tree().keys()
        );
        if failed_at.is_none() && dial_failed(&wan) {
            failed_at = Some(Instant::now());
        }
        assert!(
            control.elapsed() < Duration::from_secs(30),
            "the control wan peer logged no failed dial of {public}:\n{}",
            wan.plain_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "{test}: without a mapping, the first dial failed after {:?}",
        failed_at.map(|t| t - control)
    );
    assert!(peers(&home).is_empty(), "{:?}", peers(&home));
    drop(wan);
    drop(home);
    drop(lab);
    assert!(started.elapsed() < 3 * WAIT, "{:?}", started.elapsed());
}
