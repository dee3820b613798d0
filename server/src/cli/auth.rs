//! `shopwatch auth hash-password` and `shopwatch auth new-token`: what `[auth.users.NAME]` and
//! `[auth.tokens.NAME]` take. The password is read from stdin (never an argument, which would
//! land in the shell's history and the process list).

use std::io::BufRead;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Read a password from stdin (one line) and print its argon2id hash for
    /// `auth.users.NAME.password_hash`.
    HashPassword,
    /// Print a new random bearer token and the SHA-256 for `auth.tokens.NAME.sha256`.
    NewToken,
}

pub fn run(command: AuthCommand) -> anyhow::Result<i32> {
    match command {
        AuthCommand::HashPassword => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.chars().count() < 8 {
                anyhow::bail!("the password must have at least 8 characters");
            }
            println!("{}", crate::auth::hash_password(password)?);
        }
        AuthCommand::NewToken => {
            let (token, sha) = crate::auth::new_token();
            println!("token  = {token}   (give this to the script: Authorization: Bearer …)");
            println!("sha256 = {sha}   (put this in auth.tokens.NAME.sha256)");
        }
    }
    Ok(0)
}
