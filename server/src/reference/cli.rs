//! `cli.md`: every command and flag, from the argument definitions (clap).

use clap::CommandFactory;

pub fn render() -> String {
    let mut root = crate::Cli::command();
    // The help as a terminal 100 columns wide shows it, whatever terminal generates the file.
    root = root.term_width(100);
    let mut out = String::from("# Command line\n\n");
    out.push_str(&format!(
        "```text\n{}\n```\n",
        root.render_long_help().to_string().trim_end()
    ));
    root.build();
    for sub in root.get_subcommands() {
        section(&mut out, sub, &["shopwatch"]);
    }
    out
}

fn section(out: &mut String, cmd: &clap::Command, parents: &[&str]) {
    if cmd.get_name() == "help" {
        return;
    }
    let mut path: Vec<&str> = parents.to_vec();
    path.push(cmd.get_name());
    let mut cmd = cmd.clone().bin_name(path.join(" ")).term_width(100);
    out.push_str(&format!(
        "\n## `{}`\n\n```text\n{}\n```\n",
        path.join(" "),
        cmd.render_long_help().to_string().trim_end()
    ));
    let subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
    for sub in &subs {
        section(out, sub, &path);
    }
}
