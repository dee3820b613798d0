//! Machines that can be cut apart (`shopwatch drill --netns`): the broker, the SeaweedFS server
//! and every instance each get their own network namespace on this host, joined by veth links
//! to one bridge in a hub namespace; the drill reaches them through one more link from its own
//! namespace, and nothing else does (no default route anywhere, so no traffic leaves them).
//!
//! A partition is a blackhole route on the answering side of each cut pair (the broker's or
//! SeaweedFS's namespace; the cut node's own for the drill), so the cut node's requests leave
//! and no answer comes back — a silent partition, not a local error. A slow link
//! is a token bucket (`tbf`) on both ends of one node's link: its queue adds latency under
//! load. Lossy links are cuts switched on and off by the drill (`partition.rs`). `netem` would
//! be the obvious tool for latency and loss, but the kernels of the machines this runs on have
//! no `sch_netem` ("Specified qdisc kind is unknown"); `tbf` and routes are always there. Only
//! iproute2 (`ip`, `tc`) is needed — no iptables.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command as StdCommand;

use anyhow::{bail, Context};
use tokio::process::Command;

/// Where a process runs: here, or inside a node's namespace (`ip netns exec NS …`, which
/// execs the program, so its pid is the one we signal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place(Option<Node>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    pub ip: Ipv4Addr,
    /// The hub's end of its link.
    pub link: String,
}

impl Place {
    pub fn here() -> Self {
        Place(None)
    }

    pub fn node(&self) -> Option<&Node> {
        self.0.as_ref()
    }

    /// `program` to be started in this place.
    pub fn command(&self, program: &Path) -> Command {
        match &self.0 {
            None => Command::new(program),
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.ns]).arg(program);
                c
            }
        }
    }

    /// The address a server of this place listens on and is reached at, on `port`.
    pub fn addr(&self, port: u16) -> String {
        match &self.0 {
            None => format!("127.0.0.1:{port}"),
            Some(n) => format!("{}:{port}", n.ip),
        }
    }
}

/// What a network fault does to one node's link.
#[derive(Clone, Debug, PartialEq)]
pub enum Impair {
    /// Packets to and from these addresses vanish.
    Cut(Vec<Ipv4Addr>),
    /// Both directions limited to `kbit` per second, with up to a second of queue: requests
    /// wait behind each other as on a congested link.
    Throttle { kbit: u32 },
}

/// The `ip`/`tc` commands that impose (`on`) or lift (`!on`) `what` on `node`, whose link ends
/// in `hub`; `peers` are the namespaces of addresses we own.
pub fn impair_commands(
    hub: &str,
    node: &Node,
    what: &Impair,
    on: bool,
    peers: &[(String, Ipv4Addr)],
) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let verb = if on { "add" } else { "del" };
    match what {
        Impair::Cut(addrs) => addrs
            .iter()
            .map(|a| match peers.iter().find(|(_, p)| p == a) {
                // The answering side drops its answers: the cut node's packets still leave and
                // arrive, nothing comes back, and its own connects hang as on a real partition
                // (a blackhole in the node itself fails them at once with EINVAL).
                Some((peer_ns, _)) => {
                    let back = format!("{}/32", node.ip);
                    s(&["ip", "-n", peer_ns, "route", verb, "blackhole", &back])
                }
                // The drill's own namespace is not ours to change: the node drops its answers.
                None => s(&[
                    "ip",
                    "-n",
                    &node.ns,
                    "route",
                    verb,
                    "blackhole",
                    &format!("{a}/32"),
                ]),
            })
            .collect(),
        Impair::Throttle { kbit } => [(node.ns.as_str(), "eth0"), (hub, node.link.as_str())]
            .into_iter()
            .map(|(ns, dev)| {
                if on {
                    let rate = format!("{kbit}kbit");
                    s(&[
                        "tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
                        &rate, "burst", "16kb", "latency", "1s",
                    ])
                } else {
                    s(&["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"])
                }
            })
            .collect(),
    }
}

/// The commands that add node `ns` at host number `host` of `10.a.b.0/24` to the hub's bridge.
pub fn node_commands(hub: &str, ns: &str, net: [u8; 2], host: u8) -> Vec<Vec<String>> {
    let link = format!("h{host}");
    let addr = format!("10.{}.{}.{host}/24", net[0], net[1]);
    [
        vec!["ip", "netns", "add", ns],
        vec!["ip", "-n", ns, "link", "set", "lo", "up"],
        vec![
            "ip", "-n", hub, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns",
            ns,
        ],
        vec!["ip", "-n", hub, "link", "set", &link, "master", "br0", "up"],
        vec!["ip", "-n", ns, "addr", "add", &addr, "dev", "eth0"],
        vec!["ip", "-n", ns, "link", "set", "eth0", "up"],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect()
}

fn run(cmd: &[String]) -> anyhow::Result<()> {
    let out = StdCommand::new(&cmd[0])
        .args(&cmd[1..])
        .output()
        .with_context(|| format!("running {}", cmd[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether this machine lets us make namespaces, links and token-bucket qdiscs; the reason if not.
pub fn probe() -> Result<(), String> {
    let ns = format!("swdprobe{}", std::process::id());
    let steps = [
        vec!["ip", "netns", "add", &ns],
        vec![
            "ip", "-n", &ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
        ],
        vec![
            "tc", "-n", &ns, "qdisc", "add", "dev", "p0", "root", "tbf", "rate", "1mbit", "burst",
            "16kb", "latency", "1s",
        ],
    ];
    let mut result = Ok(());
    for s in steps {
        let cmd: Vec<String> = s.into_iter().map(String::from).collect();
        if let Err(e) = run(&cmd) {
            result = Err(format!("{e:#}"));
            break;
        }
    }
    let _ = run(&["ip".into(), "netns".into(), "del".into(), ns]);
    result
}

/// The namespaces of one drill, removed when it is dropped (even when the drill fails).
pub struct Net {
    id: String,
    net: [u8; 2],
    hub: String,
    /// Node name → its place, in the order added.
    nodes: BTreeMap<String, Node>,
    next_host: u8,
}

/// Host 1 is the drill's own end of the link.
const DRILL_HOST: u8 = 1;

impl Net {
    /// A hub with its bridge and the drill's link, on a `10.a.b.0/24` no route here uses.
    pub fn create() -> anyhow::Result<Self> {
        remove_stale();
        let id = format!("{:06x}", std::process::id() & 0xff_ffff);
        let routes = String::from_utf8_lossy(
            &StdCommand::new("ip")
                .args(["-4", "route", "show", "table", "all"])
                .output()?
                .stdout,
        )
        .into_owned();
        let net = (0..200u32)
            .map(|i| {
                let h = (std::process::id()
                    .wrapping_mul(2654435761)
                    .wrapping_add(i * 7919))
                    % (56 * 256);
                [200 + (h / 256) as u8, (h % 256) as u8]
            })
            .find(|n| !routes.contains(&format!("10.{}.{}.", n[0], n[1])))
            .context("no free 10.x.y.0/24 for the drill's network")?;
        let hub = format!("swd{id}-hub");
        let me = Net {
            id: id.clone(),
            net,
            hub: hub.clone(),
            nodes: BTreeMap::new(),
            next_host: DRILL_HOST + 1,
        };
        let link = format!("swd{id}");
        let drill_addr = format!("{}/24", me.ip(DRILL_HOST));
        for cmd in [
            vec!["ip", "netns", "add", &hub],
            vec!["ip", "-n", &hub, "link", "set", "lo", "up"],
            vec!["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"],
            vec!["ip", "-n", &hub, "link", "set", "br0", "up"],
            vec![
                "ip", "link", "add", &link, "type", "veth", "peer", "name", "h1", "netns", &hub,
            ],
            vec!["ip", "-n", &hub, "link", "set", "h1", "master", "br0", "up"],
            vec!["ip", "addr", "add", &drill_addr, "dev", &link],
            vec!["ip", "link", "set", &link, "up"],
        ] {
            run(&cmd.into_iter().map(String::from).collect::<Vec<_>>())?;
        }
        Ok(me)
    }

    fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.net[0], self.net[1], host)
    }

    /// The drill's own address on the network.
    pub fn drill_ip(&self) -> Ipv4Addr {
        self.ip(DRILL_HOST)
    }

    /// A new node (its own namespace and address) named `name`.
    pub fn add(&mut self, name: &str) -> anyhow::Result<Place> {
        let host = self.next_host;
        if host == 255 {
            bail!("the drill's network is full");
        }
        self.next_host += 1;
        let ns = format!("swd{}-{name}", self.id);
        for cmd in node_commands(&self.hub, &ns, self.net, host) {
            run(&cmd)?;
        }
        let node = Node {
            ns,
            ip: self.ip(host),
            link: format!("h{host}"),
        };
        self.nodes.insert(name.to_string(), node.clone());
        Ok(Place(Some(node)))
    }

    pub fn place(&self, name: &str) -> Place {
        Place(self.nodes.get(name).cloned())
    }

    /// The addresses of these nodes (`drill` is the drill's own end).
    pub fn addrs(&self, names: &[&str]) -> Vec<Ipv4Addr> {
        names
            .iter()
            .filter_map(|n| match *n {
                "drill" => Some(self.drill_ip()),
                n => self.nodes.get(n).map(|x| x.ip),
            })
            .collect()
    }

    /// Impose (`on`) or lift `what` on `place`'s link.
    pub fn impair(&self, place: &Place, what: &Impair, on: bool) -> anyhow::Result<()> {
        let Some(node) = place.node() else {
            bail!("a process outside the drill's network cannot be cut off");
        };
        let peers: Vec<(String, Ipv4Addr)> =
            self.nodes.values().map(|n| (n.ns.clone(), n.ip)).collect();
        let mut first = Ok(());
        // Lifting tries every step: a half-healed network would poison the rest of the drill.
        for cmd in impair_commands(&self.hub, node, what, on, &peers) {
            if let Err(e) = run(&cmd) {
                if on {
                    return Err(e);
                }
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.nodes.values() {
            let _ = run(&["ip".into(), "netns".into(), "del".into(), n.ns.clone()]);
        }
        let _ = run(&["ip".into(), "netns".into(), "del".into(), self.hub.clone()]);
        let _ = run(&[
            "ip".into(),
            "link".into(),
            "del".into(),
            format!("swd{}", self.id),
        ]);
    }
}

/// Namespaces left by a drill that was killed (its pid, in the name, is gone).
fn remove_stale() {
    let Ok(out) = StdCommand::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(id) = name.strip_prefix("swd").and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = u32::from_str_radix(id, 16) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip".into(), "netns".into(), "del".into(), name.to_string()]);
            let _ = run(&["ip".into(), "link".into(), "del".into(), format!("swd{id}")]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            ns: "ns-i0".into(),
            ip: "10.1.2.5".parse().unwrap(),
            link: "h5".into(),
        }
    }

    /// The commands for `what` on [`node`], as command lines.
    fn lines(what: &Impair, on: bool, peers: &[(String, Ipv4Addr)]) -> Vec<String> {
        impair_commands("hub", &node(), what, on, peers)
            .iter()
            .map(|c| c.join(" "))
            .collect()
    }

    #[test]
    fn a_cut_drops_the_answers_and_heals_the_same_routes() {
        let broker: Ipv4Addr = "10.1.2.2".parse().unwrap();
        let drill: Ipv4Addr = "10.1.2.1".parse().unwrap();
        let peers = vec![("ns-broker".to_string(), broker)];
        let cut = Impair::Cut(vec![broker, drill]);
        let on = lines(&cut, true, &peers);
        assert_eq!(
            on,
            [
                // The broker stops answering the instance…
                "ip -n ns-broker route add blackhole 10.1.2.5/32",
                // …and the instance the drill (whose namespace is not ours to change).
                "ip -n ns-i0 route add blackhole 10.1.2.1/32",
            ]
        );
        let off = lines(&cut, false, &peers);
        assert_eq!(
            off,
            on.iter()
                .map(|c| c.replace(" add ", " del "))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_slow_link_is_a_token_bucket_on_both_ends_and_lifting_removes_both() {
        let t = Impair::Throttle { kbit: 256 };
        assert_eq!(
            lines(&t, true, &[]),
            [
                "tc -n ns-i0 qdisc replace dev eth0 root tbf rate 256kbit burst 16kb latency 1s",
                "tc -n hub qdisc replace dev h5 root tbf rate 256kbit burst 16kb latency 1s",
            ]
        );
        assert_eq!(
            lines(&t, false, &[]),
            [
                "tc -n ns-i0 qdisc del dev eth0 root",
                "tc -n hub qdisc del dev h5 root"
            ]
        );
    }

    #[test]
    fn a_node_gets_its_namespace_a_bridged_link_and_one_address() {
        let c = node_commands("hub", "ns-b", [201, 7], 2);
        let joined: Vec<String> = c.iter().map(|c| c.join(" ")).collect();
        assert_eq!(joined[0], "ip netns add ns-b");
        assert!(joined
            .contains(&"ip -n hub link add h2 type veth peer name eth0 netns ns-b".to_string()));
        assert!(joined.contains(&"ip -n ns-b addr add 10.201.7.2/24 dev eth0".to_string()));
        // No default route: a node reaches the /24 and nothing else.
        assert!(!joined.iter().any(|c| c.contains("default")));
    }

    #[test]
    fn a_place_outside_runs_the_program_itself_and_inside_through_ip_netns_exec() {
        let here = Place::here();
        assert_eq!(here.addr(9000), "127.0.0.1:9000");
        let cmd = here.command(Path::new("/bin/true"));
        assert_eq!(cmd.as_std().get_program(), "/bin/true");
        let there = Place(Some(Node {
            ns: "swd1-i0".into(),
            ip: "10.1.2.9".parse().unwrap(),
            link: "h9".into(),
        }));
        assert_eq!(there.addr(9000), "10.1.2.9:9000");
        let cmd = there.command(Path::new("/bin/true"));
        let args: Vec<_> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.as_std().get_program(), "ip");
        assert_eq!(args, ["netns", "exec", "swd1-i0", "/bin/true"]);
    }
}
