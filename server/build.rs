//! Stamps the build with its git commit and profile (`shopwatch --version`, `shopwatch_build_info`).
//! Outside a git checkout (a source tarball) the commit is `unknown`, or `SHOPWATCH_COMMIT` if set.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = std::env::var("SHOPWATCH_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=SHOPWATCH_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=SHOPWATCH_BUILD_PROFILE={profile}");
    println!("cargo:rerun-if-env-changed=SHOPWATCH_COMMIT");
    // Re-stamp when HEAD moves: HEAD itself, the branch it points at, packed refs.
    let git = Path::new("../.git");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/packed-refs");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD")) {
        if let Some(r) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=../.git/{r}");
        }
    }
}
