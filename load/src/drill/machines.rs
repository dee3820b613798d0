//! The drill's machines, started in order: the SeaweedFS server (on its lanes), the broker and
//! the instances — each in a network namespace of its own with `--netns`, on loopback otherwise.

use std::path::{Path, PathBuf};

use super::net::{Net, Place};
use super::procs::{BrokerProc, PipelineProc};
use super::{free_addr, random_hex, DrillParams};
use crate::seaweed::{Seaweed, SeaweedParams};

pub(crate) struct Machines {
    pub net: Option<Net>,
    pub seaweed: Option<Seaweed>,
    pub broker: BrokerProc,
    /// The first instance, and the others of a group lane.
    pub pipeline: PipelineProc,
    pub more: Vec<PipelineProc>,
}

/// Instance `n`'s place and its HTTP and Flight addresses: its own namespace (where every
/// port is free) with `net`, free loopback ports otherwise.
pub(crate) fn instance_addrs(
    net: Option<&mut Net>,
    n: usize,
) -> anyhow::Result<(Place, String, String)> {
    Ok(match net {
        Some(net) => {
            let place = net.add(&format!("i{n}"))?;
            let (http, flight) = (place.addr(9000), place.addr(9001));
            (place, http, flight)
        }
        None => (Place::here(), free_addr()?, free_addr()?),
    })
}

/// Start every machine of `p`'s lane under `dir`; the instances run with `config`.
pub(crate) async fn start(
    p: &DrillParams,
    dir: &Path,
    config: PathBuf,
    data_dir: &Path,
    mut net: Option<Net>,
) -> anyhow::Result<Machines> {
    // The SeaweedFS lane: a real server for the catalog and S3, with fresh keys per drill.
    let seaweed = match p.lane.on_seaweed() {
        false => None,
        true => Some(
            Seaweed::start(
                SeaweedParams::new(
                    &dir.join("seaweed"),
                    &format!("drill-{}", random_hex(8)),
                    &random_hex(24),
                )?
                .in_place(match net.as_mut() {
                    Some(n) => n.add("s3")?,
                    None => Place::here(),
                }),
            )
            .await?,
        ),
    };
    let (broker_place, broker_addr) = match net.as_mut() {
        Some(n) => {
            let place = n.add("broker")?;
            let addr = place.addr(9092);
            (place, addr)
        }
        None => (Place::here(), free_addr()?),
    };
    let broker = BrokerProc::start(
        &p.bin,
        broker_place,
        broker_addr,
        dir.join("broker"),
        p.partitions,
    )
    .await?;
    let brokers = broker.listen.clone();
    let mut env = vec![(
        "RUST_LOG".to_string(),
        if p.canary { "trace" } else { "info" }.to_string(),
    )];
    // The drill's own settings win over a SHOPWATCH_* environment of the caller.
    for (k, _) in std::env::vars() {
        if k.starts_with("SHOPWATCH_") && k.contains("__") {
            env.push((k, String::new()));
        }
    }
    env.retain(|(_, v)| !v.is_empty());
    if let Some(s) = &seaweed {
        env.extend(s.params.shopwatch_env());
    }
    let (place, http, flight) = instance_addrs(net.as_mut(), 0)?;
    let mut pipeline = PipelineProc::new(
        &p.bin,
        place,
        brokers.clone(),
        data_dir.to_path_buf(),
        http,
        flight,
        config,
        env,
        dir.join("pipeline.log"),
    );
    pipeline.start().await?;
    let mut more = Vec::new();
    for n in 1..p.instances {
        let (place, http, flight) = instance_addrs(net.as_mut(), n)?;
        let mut sibling = pipeline.sibling(place, http, flight, n);
        sibling.start().await?;
        more.push(sibling);
    }

    Ok(Machines {
        net,
        seaweed,
        broker,
        pipeline,
        more,
    })
}
