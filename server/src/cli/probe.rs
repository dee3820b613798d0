//! `shopwatch probe URL`: GET a URL and exit 0 on a 2xx answer (the container healthcheck;
//! no curl in the image).

use std::time::Duration;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct ProbeArgs {
    url: String,
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<i32> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(args.timeout.clamp(0.1, 600.0)))
        .build()?;
    let status = client
        .get(&args.url)
        .send()
        .await
        .with_context(|| format!("GET {}", args.url))?
        .status();
    println!("{}: HTTP {}", args.url, status.as_u16());
    Ok(if status.is_success() { 0 } else { 1 })
}
