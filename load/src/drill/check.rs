//! The independent readers: pyiceberg scripts (not our Iceberg code) shipped inside the binary
//! and run with the machine's `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

const SCRIPTS: [(&str, &str); 4] = [
    ("lakecat.py", include_str!("../../checkers/lakecat.py")),
    (
        "check_lake.py",
        include_str!("../../checkers/check_lake.py"),
    ),
    (
        "check_kpis.py",
        include_str!("../../checkers/check_kpis.py"),
    ),
    (
        "check_history.py",
        include_str!("../../checkers/check_history.py"),
    ),
];

pub struct Checkers {
    dir: PathBuf,
    python: String,
    /// `shopwatch tables --json` of the pipeline under test: the checkers' table list.
    tables: Option<PathBuf>,
    /// Where the lake is, when not in `--data-dir` (a REST catalog and S3).
    pub lake_args: Vec<String>,
}

/// One checker's verdict: its JSON summary and its failure lines.
pub struct Verdict {
    pub name: &'static str,
    pub summary: serde_json::Value,
    pub failures: Vec<String>,
}

impl Checkers {
    /// Write the scripts to `dir` and make sure python3 has pyiceberg.
    pub fn install(dir: &Path, python: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for (name, text) in SCRIPTS {
            std::fs::write(dir.join(name), text)?;
        }
        let probe = Command::new(python)
            .args(["-c", "import pyiceberg, pyarrow, sqlalchemy"])
            .output()
            .with_context(|| format!("running {python}: the drill's checkers need Python 3"))?;
        if !probe.status.success() {
            bail!(
                "the drill's independent checkers need pyiceberg: \
                 `{python} -m pip install 'pyiceberg[sql-sqlite,pyarrow]'` ({})",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
        }
        Ok(Checkers {
            dir: dir.to_path_buf(),
            python: python.to_string(),
            tables: None,
            lake_args: Vec::new(),
        })
    }

    /// Describe the tables as `bin` sees them with `config` (the checkers' table list, windows
    /// included).
    pub fn describe_tables(&mut self, bin: &Path, config: &Path) -> anyhow::Result<()> {
        let out = Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["tables", "--json"])
            .output()
            .context("running shopwatch tables --json")?;
        if !out.status.success() {
            bail!(
                "shopwatch tables --json failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let path = self.dir.join("tables.json");
        std::fs::write(&path, &out.stdout)?;
        self.tables = Some(path);
        Ok(())
    }

    pub fn run(&self, name: &'static str, args: &[&str]) -> anyhow::Result<Verdict> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.dir.join(name))
            .args(args)
            .args(&self.lake_args);
        if let Some(t) = &self.tables {
            cmd.arg("--tables").arg(t);
        }
        let out = cmd.output().with_context(|| format!("running {name}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: serde_json::Value = serde_json::from_str(&stdout).with_context(|| {
            format!(
                "{name} printed no summary ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            )
        })?;
        let failures = summary["failures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Verdict {
            name,
            summary,
            failures,
        })
    }
}
