//! The process's exit codes, one place (documented in docs/operations.md, Troubleshooting).

/// A clean stop (SIGTERM, Ctrl-C, or a one-shot command that did its work).
pub const OK: i32 = 0;
/// Start-up or a command failed: bad configuration, an unreachable part, a refused table.
/// The message on stderr names the cause.
pub const ERROR: i32 = 1;
/// The command line itself was wrong (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// The supervisor gave up: every pipeline failed past its restart budget. A service manager
/// should restart the process (after looking at the log); the lake is consistent.
pub const GAVE_UP: i32 = 3;
