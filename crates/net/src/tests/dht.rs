//! The DHT source on a private mainline network on 127.0.0.1 (mainline's
//! `Testnet`): nothing here reaches any other address.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Duration;

use keys::FolderId;
use mainline::{Id, Testnet};

use super::*;
use crate::discovery::dht::{self, DhtConfig, DhtDiscovery};
use crate::{Candidates, Discovery, KnownHost, NetError, NetManager};

/// A private DHT of `n` server nodes on 127.0.0.1 (its build blocks).
async fn testnet(n: usize) -> Testnet {
    tokio::task::spawn_blocking(move || Testnet::builder(n).build().unwrap())
        .await
        .unwrap()
}

fn hosts(values: &[String]) -> Vec<KnownHost> {
    values.iter().map(|v| v.parse().unwrap()).collect()
}

/// A source on 127.0.0.1 announcing `tcp_port`, retrying quickly.
fn config(bootstrap: Vec<KnownHost>, tcp_port: u16) -> DhtConfig {
    DhtConfig {
        bootstrap,
        port: 0,
        port_fallback: false,
        bind: Ipv4Addr::LOCALHOST,
        tcp_port,
        server: false,
        nodes_file: None,
        interval: Duration::from_secs(3600),
        retry_interval: Duration::from_millis(500),
        save_interval: Duration::from_millis(200),
    }
}

fn folder() -> FolderId {
    rw_key().folder_id()
}

/// A UDP port free right now on 127.0.0.1.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads candidates until one is at `want` (bounded by [`LIMIT`]); checks
/// every one on the way.
async fn expect(candidates: &mut Candidates, folder: FolderId, want: SocketAddr) {
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(c) = candidates.next().await {
            assert_eq!(
                (c.folder, c.source, c.peer, c.lan),
                (folder, "dht", None, false)
            );
            if c.addr == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no candidate {want} within {LIMIT:?}");
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

/// Polls `path` until it holds at least one node (bounded by [`LIMIT`]).
async fn saved_nodes(path: &Path) -> Vec<SocketAddrV4> {
    for _ in 0..(LIMIT.as_millis() / 50) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let nodes: Vec<SocketAddrV4> = text.lines().filter_map(|l| l.parse().ok()).collect();
        if !nodes.is_empty() {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never held a node", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dht_sources_find_each_other_on_a_private_network() {
    let net = testnet(6).await;
    let id = folder();
    let a = DhtDiscovery::start(config(hosts(&net.bootstrap), 40_001));
    let b = DhtDiscovery::start(config(hosts(&net.bootstrap), 40_002));
    assert_eq!(a.name(), "dht");
    let mut from_a = a.subscribe(id);
    let mut from_b = b.subscribe(id);
    // Each sees the other's TCP port (explicit, not the DHT socket's).
    expect(&mut from_a, id, local(40_002)).await;
    expect(&mut from_b, id, local(40_001)).await;
    // The network holds both announcements under the folder id.
    let mut held = Vec::new();
    let dht = net.nodes[0].clone().as_async();
    let mut peers = dht.get_peers(Id::from_bytes(id.as_bytes()).unwrap());
    while let Ok(Some(batch)) =
        tokio::time::timeout(LIMIT, futures_lite::StreamExt::next(&mut peers)).await
    {
        held.extend(batch);
    }
    for port in [40_001, 40_002] {
        assert!(
            held.contains(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            "{held:?}"
        );
    }
    // Another folder's subscription hears nothing of theirs.
    let other = folder();
    let mut quiet = a.subscribe(other);
    let heard = tokio::time::timeout(Duration::from_secs(3), quiet.next()).await;
    assert!(heard.is_err(), "{heard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_dht_of_our_own_nodes_only() {
    // No mainline Testnet: one of our sources in server mode is the whole
    // network's bootstrap, as on a LAN or a private deployment.
    let boot_port = free_udp_port();
    let mut boot_config = config(Vec::new(), 40_010);
    boot_config.port = boot_port;
    boot_config.server = true;
    let boot = DhtDiscovery::start(boot_config);
    let id = folder();
    let _boot_sub = boot.subscribe(id);
    let via_boot = hosts(&[local(boot_port).to_string()]);
    // The peers themselves are ordinary (adaptive) nodes.
    let a = DhtDiscovery::start(config(via_boot.clone(), 40_011));
    let b = DhtDiscovery::start(config(via_boot, 40_012));
    let mut from_a = a.subscribe(id);
    let mut from_b = b.subscribe(id);
    expect(&mut from_a, id, local(40_012)).await;
    expect(&mut from_b, id, local(40_011)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_connect_through_the_dht_only() {
    let net = testnet(5).await;
    let key = rw_key();
    let config = || NetConfig {
        dht: true,
        dht_bootstrap: net.bootstrap.clone(),
        dht_port: 0,
        // The DHT alone (and never a public tracker).
        tracker: false,
        ..loopback_config()
    };
    let (pa, pb) = peer_ids();
    let a = NetManager::bind(config(), pa).unwrap();
    let a_addr = a.local_addr();
    let (ha, mut ea) = a.start(vec![creds(&key)]);
    assert_eq!(ha.status().await.unwrap().discovery, ["dht"]);
    // B starts once A's announcement is in the network, so B's first lookup
    // finds it (else both would wait for the one-minute retry).
    let dht = net.nodes[0].clone().as_async();
    let id = Id::from_bytes(key.folder_id().as_bytes()).unwrap();
    let mut announced = false;
    for _ in 0..(LIMIT.as_millis() / 200) {
        let mut peers = dht.get_peers(id);
        while let Ok(Some(batch)) =
            tokio::time::timeout(LIMIT, futures_lite::StreamExt::next(&mut peers)).await
        {
            announced |= batch.iter().any(|p| SocketAddr::V4(*p) == a_addr);
        }
        if announced {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(announced, "A's announcement never reached the network");
    let b = NetManager::bind(config(), pb).unwrap();
    let (hb, mut eb) = b.start(vec![creds(&key)]);
    let mut cb = next_connected(&mut eb).await;
    let mut ca = next_connected(&mut ea).await;
    assert_eq!(
        (cb.peer, cb.source, cb.dialed, cb.remote),
        (pa, "dht", true, a_addr)
    );
    assert_eq!((ca.peer, ca.source), (pb, "incoming"));
    pass(&mut cb, &mut ca, b"found through the DHT").await;
    ha.shutdown();
    hb.shutdown();
}

#[test]
fn bad_bootstrap_is_bad_input_and_off_means_none() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listen = local(41_544);
        let bad = NetConfig {
            dht: true,
            tracker: false,
            dht_bootstrap: vec!["10.0.0.1:6881".into(), "nonsense".into()],
            ..loopback_config()
        };
        let err = dht::start(&bad, listen).err().unwrap();
        assert!(matches!(err, NetError::DhtBootstrap(_)), "{err:?}");
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("nonsense"), "{err}");
        let err = NetManager::bind(bad.clone(), peer_ids().0).unwrap_err();
        assert!(matches!(err, NetError::DhtBootstrap(_)), "{err:?}");
        let off = NetConfig { dht: false, ..bad };
        assert!(dht::start(&off, listen).unwrap().is_none());
        // Tests never fall back on the public routers.
        let public = NetConfig {
            dht: true,
            ..loopback_config()
        };
        assert!(dht::start(&public, listen).unwrap().is_none());
        // An IPv6-only listener gets no DHT (mainline is IPv4 only).
        let private = NetConfig {
            dht: true,
            dht_bootstrap: vec!["127.0.0.1:9".into()],
            ..loopback_config()
        };
        assert!(
            dht::start(&private, "[::1]:41544".parse().unwrap())
                .unwrap()
                .is_none()
        );
        let c = DhtConfig::from_net(&private, "[::]:7".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.bind, c.tcp_port, c.port_fallback),
            (Ipv4Addr::UNSPECIFIED, 7, true)
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_table_is_saved_and_reloaded_and_damage_ignored() {
    let net = testnet(5).await;
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("dht-nodes");
    // A damaged file costs nothing: the node starts and the file is replaced.
    std::fs::write(&path, b"\xffnot a node\n999.1.1.1:1\n").unwrap();
    let id = folder();
    let a = DhtDiscovery::start(DhtConfig {
        nodes_file: Some(path.clone()),
        ..config(hosts(&net.bootstrap), 40_011)
    });
    let mut from_a = a.subscribe(id);
    let saved = saved_nodes(&path).await;
    let testnet_addrs: Vec<SocketAddrV4> =
        net.bootstrap.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        saved.iter().all(|n| testnet_addrs.contains(n)),
        "{saved:?} ⊄ {testnet_addrs:?}"
    );
    let b = DhtDiscovery::start(config(hosts(&net.bootstrap), 40_012));
    let _from_b = b.subscribe(id);
    expect(&mut from_a, id, local(40_012)).await;
    drop(from_a);
    drop(a);

    // Restarted with a dead bootstrap node only, A reaches the network
    // through the saved nodes and finds B again.
    let dead = format!("127.0.0.1:{}", free_udp_port());
    let a = DhtDiscovery::start(DhtConfig {
        nodes_file: Some(path.clone()),
        ..config(hosts(&[dead]), 40_011)
    });
    let mut from_a = a.subscribe(id);
    expect(&mut from_a, id, local(40_012)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_ports_fall_back_or_skip_and_drop_frees_the_port() {
    let net = testnet(4).await;
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let id = folder();
    // An explicit port that is taken: no DHT, the subscription just ends.
    let skipped = DhtDiscovery::start(DhtConfig {
        port,
        ..config(hosts(&net.bootstrap), 40_021)
    });
    let mut none = skipped.subscribe(id);
    assert_eq!(tokio::time::timeout(LIMIT, none.next()).await, Ok(None));
    // The default port that is taken: any port instead, and it works.
    let fallback = DhtDiscovery::start(DhtConfig {
        port,
        port_fallback: true,
        ..config(hosts(&net.bootstrap), 40_022)
    });
    let other = DhtDiscovery::start(config(hosts(&net.bootstrap), 40_023));
    let mut from_fallback = fallback.subscribe(id);
    let _from_other = other.subscribe(id);
    expect(&mut from_fallback, id, local(40_023)).await;
    drop(held);

    // Dropping the source and its subscriptions stops the node: its port is
    // free again.
    let port = free_udp_port();
    let fixed = DhtDiscovery::start(DhtConfig {
        port,
        ..config(hosts(&net.bootstrap), 40_024)
    });
    let mut from_fixed = fixed.subscribe(id);
    expect(&mut from_fixed, id, local(40_023)).await;
    assert!(
        UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "the node holds its port"
    );
    drop(from_fixed);
    drop(fixed);
    let mut freed = false;
    for _ in 0..(LIMIT.as_millis() / 50) {
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the DHT node outlived its source");
}
