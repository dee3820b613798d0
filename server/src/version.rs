//! What build this is: the version, the git commit and the build profile (from `build.rs`).

/// `0.1.0 (commit 1a2b3c4d5e6f, debug build)`: what `--version` prints.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("SHOPWATCH_COMMIT"),
    ", ",
    env!("SHOPWATCH_BUILD_PROFILE"),
    " build)"
);

/// `shopwatch_build_info{version,commit,profile} 1`, for dashboards that tell builds apart.
pub fn register_build_info(registry: &prometheus::Registry) {
    let g = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "shopwatch_build_info",
            "Always 1; the labels say which build runs (version, git commit, build profile).",
        ),
        &["version", "commit", "profile"],
    )
    .expect("static metric definition");
    shopwatch_actors::telemetry::register(registry, &g);
    g.with_label_values(&[
        env!("CARGO_PKG_VERSION"),
        env!("SHOPWATCH_COMMIT"),
        env!("SHOPWATCH_BUILD_PROFILE"),
    ])
    .set(1);
}
