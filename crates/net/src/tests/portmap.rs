//! Port mapping against a real gateway: Debian's `miniupnpd` in a "gateway"
//! namespace between a "home" host (private subnet, default route through
//! the gateway, masqueraded) and a "wan" host on the public side.
//!
//! The mapper runs in the home host as this test binary re-executed under
//! `ip netns exec` (the ignored `portmap_child` test); so does the wan-side
//! client. Everything stays inside the three namespaces: the SSDP multicast
//! reaches only the gateway's LAN side.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::portmap::{PortMapConfig, PortMapper};

const CHILD_ENV: &str = "SWARMSYNC_NET_PORTMAP_CHILD";
/// What the home host's listener says to whoever connects.
const GREETING: &str = "hello from home";
/// The lease asked of the gateway: short, so the test sees a renewal.
const LEASE: Duration = Duration::from_secs(6);
/// Bound on the whole of one test.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Why these tests cannot run here, if they cannot.
fn unsupported() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    for (tool, arg, package) in [
        ("ip", "-V", "iproute2"),
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

fn run(command: &mut Command) -> Result<String, String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{shown}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// The three namespaces and the gateway daemon; all gone on drop.
struct Lab {
    gw: String,
    home: String,
    wan: String,
    subnet: u8,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Lab {
    /// Home `10.232.<subnet>.2/24` behind gateway `.1`; the gateway's WAN
    /// side `198.20.<subnet>.1/24`, the wan host `.2`. The WAN range is just
    /// outside 198.18.0.0/15: miniupnpd refuses to forward when its external
    /// address is in a reserved range, and nothing leaves these namespaces.
    /// `service`: miniupnpd with UPnP on (`Some(true)`), with only PCP /
    /// NAT-PMP (`Some(false)`), or no daemon at all (`None`).
    fn create(tag: &str, subnet: u8, service: Option<bool>) -> Self {
        let base = format!("swp{}{tag}", std::process::id());
        let lab = Self {
            gw: format!("{base}g"),
            home: format!("{base}h"),
            wan: format!("{base}w"),
            subnet,
            dir: tempfile::tempdir().unwrap(),
            daemon: None,
        };
        let mut lab = lab;
        lab.setup(service)
            .unwrap_or_else(|e| panic!("setting up the gateway lab failed: {e}"));
        lab
    }

    fn home_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 232, self.subnet, 2)
    }

    fn gw_lan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 232, self.subnet, 1)
    }

    fn gw_wan_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 20, self.subnet, 1)
    }

    fn setup(&mut self, service: Option<bool>) -> Result<(), String> {
        let k = self.subnet;
        let (gw, home, wan) = (self.gw.clone(), self.home.clone(), self.wan.clone());
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
        addr(&gw, format!("10.232.{k}.1/24"), "lan0")?;
        addr(&gw, format!("198.20.{k}.1/24"), "wan0")?;
        addr(&home, format!("10.232.{k}.2/24"), "eth0")?;
        addr(&wan, format!("198.20.{k}.2/24"), "eth0")?;
        ip(&[
            "-n",
            &home,
            "route",
            "add",
            "default",
            "via",
            &format!("10.232.{k}.1"),
        ])?;
        ip(&[
            "-n",
            &wan,
            "route",
            "add",
            "default",
            "via",
            &format!("198.20.{k}.1"),
        ])?;
        run(in_ns(&gw, "sh").args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]))?;
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
        std::fs::write(&rules_path, rules).map_err(|e| e.to_string())?;
        run(in_ns(&gw, "nft").arg("-f").arg(&rules_path))?;
        let Some(upnp) = service else {
            return Ok(());
        };
        let conf = format!(
            "ext_ifname=wan0
listening_ip=lan0
http_port=0
enable_upnp={upnp}
enable_natpmp=yes
secure_mode=yes
system_uptime=no
min_lifetime=1
uuid=3e2a1f5c-6d0b-4a8e-9c7f-2b1d4e5f6a{k:02x}
upnp_table_name=swsync
upnp_nat_table_name=swsync
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 10.232.{k}.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
",
            upnp = if upnp { "yes" } else { "no" },
        );
        let conf_path = self.dir.path().join("miniupnpd.conf");
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.log_path()).map_err(|e| e.to_string())?;
        let daemon = in_ns(&gw, "miniupnpd")
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
        // start-up); a mapper started earlier would find only what is
        // already listening (e.g. PCP but no UPnP yet).
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
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The DNAT rules miniupnpd has installed, one line each.
    fn dnat_rules(&self) -> Vec<String> {
        let out = run(in_ns(&self.gw, "nft").args([
            "list",
            "chain",
            "inet",
            "swsync",
            "prerouting_miniupnpd",
        ]))
        .unwrap();
        out.lines()
            .filter(|l| l.contains("dnat"))
            .map(|l| l.trim().to_owned())
            .collect()
    }

    /// Re-executes this binary in `ns` as `portmap_child` with `spec`.
    fn child(&self, ns: &str, spec: &str) -> Command {
        let mut c = in_ns(ns, &std::env::current_exe().unwrap().to_string_lossy());
        c.args([
            "tests::portmap::portmap_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec);
        c
    }

    /// From the wan host, connects to `addr` over TCP and UDP; the child's
    /// two result lines (`TCP-OK …`/`TCP-FAIL …`, `UDP-OK …`/`UDP-FAIL …`).
    fn probe_from_wan(&self, tcp: SocketAddr, udp: SocketAddr) -> (String, String) {
        let out = self
            .child(&self.wan.clone(), &format!("wan {tcp} {udp}"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let find = |p: &str| {
            text.lines()
                .find_map(|l| l.find(p).map(|at| l[at..].to_owned()))
                .unwrap_or_else(|| panic!("wan probe printed no {p} line:\n{text}"))
        };
        (find("TCP-"), find("UDP-"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in [&self.home, &self.wan, &self.gw] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// The mapper child in the home host, its stdout read line by line.
struct Home {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Home {
    fn start(lab: &Lab, upnp: bool, pcp: bool, port: u16) -> Self {
        let mut child = lab
            .child(&lab.home.clone(), &format!("home {upnp} {pcp} {port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            stdin,
            lines,
        }
    }

    /// The next line that starts with `prefix`, split in words (bounded).
    fn expect(&self, prefix: &str, limit: Duration, lab: &Lab) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // libtest's "test … ... " may precede it on the same line.
                Ok(line) if line.contains(prefix) => {
                    let at = line.find(prefix).unwrap_or(0);
                    return line[at..].split_whitespace().map(str::to_owned).collect();
                }
                Ok(line) => eprintln!("home: {line}"),
                Err(_) => panic!(
                    "home printed no {prefix} line within {limit:?}; miniupnpd log:\n{}",
                    lab.log()
                ),
            }
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut c) = self.child.take() {
            // It exits at EOF on stdin; kill it if it does not soon.
            for _ in 0..40 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The whole scenario; `upnp` chooses which protocol miniupnpd offers.
fn mapping_scenario(test: &str, tag: &str, subnet: u8, upnp: bool) {
    if let Some(why) = unsupported() {
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    let started = Instant::now();
    let lab = Lab::create(tag, subnet, Some(upnp));
    let port = 40_000 + u16::from(subnet);
    let mut home = Home::start(&lab, true, true, port);

    // 1. A mapping, with the gateway's WAN address as the public one.
    let mapped = home.expect("MAPPED", Duration::from_secs(30), &lab);
    eprintln!("{test}: {mapped:?}");
    let [_, protocol, tcp, udp, gateway, lease] = &mapped[..] else {
        panic!("bad MAPPED line {mapped:?}");
    };
    if upnp {
        assert_eq!(protocol, "upnp");
    } else {
        assert!(protocol == "pcp" || protocol == "nat-pmp", "{protocol}");
    }
    let tcp: SocketAddr = tcp.parse().unwrap();
    let udp: SocketAddr = udp.parse().unwrap();
    assert_eq!(tcp.ip(), lab.gw_wan_ip());
    assert_eq!(udp.ip(), lab.gw_wan_ip());
    // The port was free, so the gateway kept our number.
    assert_eq!(tcp.port(), port);
    assert_eq!(udp.port(), port);
    assert_eq!(gateway, &lab.gw_lan_ip().to_string());
    assert_eq!(lease, &LEASE.as_secs().to_string(), "granted lease");
    let rules = lab.dnat_rules();
    let to = format!("dnat ip to {}:{port}", lab.home_ip());
    assert_eq!(
        rules.iter().filter(|r| r.contains(&to)).count(),
        2,
        "TCP and UDP forwarded to home: {rules:?}"
    );

    // 2. The home host is reachable from the wan side through it.
    let (t, u) = lab.probe_from_wan(tcp, udp);
    assert_eq!(t, format!("TCP-OK {GREETING}"), "{}", lab.log());
    assert_eq!(u, "UDP-OK ping", "{}", lab.log());

    // 3. Past the lease it still is: the mapper renewed (at half the lease).
    std::thread::sleep(LEASE + Duration::from_secs(2));
    let (t, u) = lab.probe_from_wan(tcp, udp);
    let log = lab.log();
    assert_eq!(t, format!("TCP-OK {GREETING}"), "after the lease:\n{log}");
    assert_eq!(u, "UDP-OK ping", "after the lease:\n{log}");

    // 4. Shutdown removes it, within its bound; the listener is still up,
    // so only the missing mapping can turn the wan host away.
    let asked = Instant::now();
    home.say("SHUTDOWN");
    home.expect("UNMAPPED", Duration::from_secs(5), &lab);
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    let rules = lab.dnat_rules();
    assert!(!rules.iter().any(|r| r.contains(&to)), "left: {rules:?}");
    let (t, u) = lab.probe_from_wan(tcp, udp);
    assert!(t.starts_with("TCP-FAIL"), "{t}");
    assert!(u.starts_with("UDP-FAIL"), "{u}");
    drop(home);
    drop(lab);
    assert!(started.elapsed() < TEST_LIMIT, "{:?}", started.elapsed());
}

#[test]
fn upnp_gateway_maps_renews_and_removes() {
    mapping_scenario("upnp_gateway_maps_renews_and_removes", "u", 41, true);
}

#[test]
fn pcp_gateway_maps_renews_and_removes() {
    mapping_scenario("pcp_gateway_maps_renews_and_removes", "p", 42, false);
}

/// A network whose gateway runs no mapping service: the status says why, no
/// address is claimed, and shutdown is quick.
#[test]
fn no_gateway_service_is_reported() {
    let test = "no_gateway_service_is_reported";
    if let Some(why) = unsupported() {
        eprintln!("SKIPPED {test}: {why}");
        return;
    }
    let lab = Lab::create("n", 43, None);
    let mut home = Home::start(&lab, true, true, 40_043);
    let failed = home.expect("FAILED", Duration::from_secs(30), &lab);
    eprintln!("{test}: {failed:?}");
    let text = failed.join(" ");
    assert!(text.contains("PCP / NAT-PMP"), "{text}");
    let asked = Instant::now();
    home.say("SHUTDOWN");
    home.expect("UNMAPPED", Duration::from_secs(5), &lab);
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
}

/// The mapper in the home host (`home UPNP PCP PORT`) or a probe from the
/// wan host (`wan TCP_ADDR UDP_ADDR`); does nothing unless started by the
/// tests above.
#[tokio::test]
#[ignore = "run inside a namespace by the portmap tests"]
async fn portmap_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    match words[..] {
        ["home", upnp, pcp, port] => {
            home_child(upnp == "true", pcp == "true", port.parse().unwrap()).await;
        }
        ["wan", tcp, udp] => wan_child(tcp.parse().unwrap(), udp.parse().unwrap()).await,
        _ => panic!("bad child spec {spec:?}"),
    }
}

async fn home_child(upnp: bool, pcp: bool, port: u16) {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(format!("{GREETING}\n").as_bytes()).await;
        }
    });
    let udp = tokio::net::UdpSocket::bind(("0.0.0.0", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&buf[..n], from).await;
        }
    });
    let mut config = PortMapConfig::new(port);
    config.upnp = upnp;
    config.pcp = pcp;
    config.upnp_lease = LEASE;
    config.pmp_lease = LEASE;
    config.discovery_timeout = Duration::from_secs(2);
    // miniupnpd may still be starting: look again soon.
    config.retry_min = Duration::from_millis(500);
    config.retry_max = Duration::from_secs(2);
    let mapper = PortMapper::start(config);
    let mut status = mapper.watch();
    let seen = tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.tcp.is_some() || s.last_error.is_some()),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    match (seen.protocol, seen.tcp) {
        (Some(protocol), Some(tcp)) => {
            let udp = seen.udp.map_or("-".to_owned(), |a| a.to_string());
            let gateway = seen.gateway.map_or("-".to_owned(), |g| g.to_string());
            let lease = seen.lease.map_or(0, |l| l.as_secs());
            println!("MAPPED {protocol} {tcp} {udp} {gateway} {lease}");
        }
        _ => println!("FAILED {}", seen.last_error.unwrap_or_default()),
    }
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    if let Ok(Some(line)) = stdin.next_line().await {
        assert_eq!(line, "SHUTDOWN");
        mapper.shutdown().await;
        println!("UNMAPPED");
    }
    // Serve on until the test is done probing (EOF).
    while let Ok(Some(_)) = stdin.next_line().await {}
}

async fn wan_child(tcp: SocketAddr, udp: SocketAddr) {
    let limit = Duration::from_secs(3);
    let tcp_result = tokio::time::timeout(limit, async {
        let mut s = tokio::net::TcpStream::connect(tcp).await?;
        let mut text = String::new();
        s.read_to_string(&mut text).await?;
        Ok::<_, std::io::Error>(text)
    })
    .await;
    match tcp_result {
        Ok(Ok(text)) => println!("TCP-OK {}", text.trim()),
        Ok(Err(e)) => println!("TCP-FAIL {e}"),
        Err(_) => println!("TCP-FAIL timeout"),
    }
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        // The reply may come back as an ICMP error (no mapping): that is a
        // failure too, so only a matching datagram counts.
        if socket.send_to(b"ping", udp).await.is_err() {
            continue;
        }
        if let Ok(Ok((n, from))) =
            tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await
            && from == udp
        {
            println!("UDP-OK {}", String::from_utf8_lossy(&buf[..n]));
            return;
        }
    }
    println!("UDP-FAIL no echo");
}
