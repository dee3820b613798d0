//! The binary's own surface: `--version` names the commit, `--help` puts operator commands
//! first, usage errors have their own exit code.

use std::process::Command;

use crate::harness::BIN;

#[test]
fn version_names_the_commit_and_help_puts_operators_first() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    // `shopwatch 0.1.0 (commit 1a2b3c4d5e6f, debug build)`
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no commit in {version:?}"));
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{version:?}"
    );
    assert!(version.contains(" build)"), "{version:?}");
    // The commit of this checkout (the test builds from it).
    if let Ok(head) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        if head.status.success() {
            assert_eq!(
                commit,
                String::from_utf8_lossy(&head.stdout).trim(),
                "{version:?}"
            );
        }
    }

    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let at = |cmd: &str| {
        help.find(&format!("\n  {cmd} "))
            .unwrap_or_else(|| panic!("{cmd} not in --help:\n{help}"))
    };
    for operator in [
        "demo", "run", "query", "tables", "config", "migrate", "auth",
    ] {
        for dev in ["broker", "produce", "bench", "drill", "reference"] {
            assert!(at(operator) < at(dev), "{operator} after {dev}:\n{help}");
            assert!(
                help[at(dev) + 1..]
                    .lines()
                    .next()
                    .unwrap()
                    .contains("[dev]"),
                "{dev} not marked"
            );
        }
    }

    // A usage error: 2, with clap's message; never the give-up code (3).
    let out = Command::new(BIN).arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}
