//! The pipeline's configuration file for a drill.

use std::path::Path;

use anyhow::Context;

use super::DrillParams;

/// Off loopback (`--netns`) the pipeline refuses to serve without logins: the drill's token
/// becomes an operator bearer token too (so `/readyz` details, `/metrics` and `/drill` all
/// take the one header), and Flight gets a password of its own.
pub(super) struct Logins {
    pub token: String,
    pub flight_password: String,
}

/// The pipeline's configuration for the drill; with `canary`, every secret is a canary.
pub(super) fn write_config(
    path: &Path,
    p: &DrillParams,
    canaries: &[(String, String)],
    logins: Option<&Logins>,
) -> anyhow::Result<()> {
    let get = |k: &str| {
        canaries
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let mut text = String::new();
    text.push_str(&format!(
        "[drill]\nenabled = true\ntoken = {:?}\n\n",
        get("drill.token").unwrap_or_default()
    ));
    text.push_str("[pipeline]\ncommit_interval_ms = 500\n\n");
    // Faults come far denser than in production (up to one every 3 s): a restart budget of
    // 5 per 60 s would end in a designed meltdown rather than test recovery.
    text.push_str("[supervision]\nstuck_timeout_s = 4\nmax_restarts = 30\n\n");
    // Data compaction far more often than in production (every 2 s, files older than 2 s),
    // so every fault also meets a compaction in flight or just landed.
    text.push_str(&format!(
        "[maintenance]\norphan_sweep_every_commits = 20\norphan_min_age_s = {}\n\
         data_compact_every_s = 2\ndata_fresh_for_s = 2\n\n",
        p.orphan_min_age_s
    ));
    // Windows close 5 s after traffic stops; silence alerts after 15 s mark the end.
    text.push_str("[windows]\nidle_timeout_s = 5\n\n");
    text.push_str("[alerts]\ncheckpoint_every_s = 5\n\n[alerts.no_data]\nafter_s = 15\n\n");
    if let Some(l) = logins {
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(l.token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.push_str(&format!(
            "[auth.tokens.drill]\nrole = \"operator\"\nsha256 = {sha:?}\n\n[flight]\npassword = {:?}\n\n",
            l.flight_password
        ));
    }
    if let Some(pw) = get("flight.password") {
        text.push_str(&format!("[flight]\npassword = {pw:?}\n\n"));
    }
    if let Some(pw) = get("query.password") {
        text.push_str(&format!(
            "[query]\nusername = \"drill\"\npassword = {pw:?}\n\n"
        ));
    }
    if let Some(secret) = get("lake.s3.secret_access_key") {
        text.push_str(&format!(
            "[lake.s3]\naccess_key_id = \"drill-key\"\nsecret_access_key = {secret:?}\n\n"
        ));
    }
    if let Some(pw) = get("kafka.extra.sasl.password") {
        text.push_str(&format!("[kafka.extra]\n\"sasl.password\" = {pw:?}\n\n"));
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
