//! `config.md`: every configuration key, from the config types' fields and doc comments, with
//! the default (`Config::default()`) and the environment variable that sets it.

use std::collections::BTreeMap;

use toml::Value;

use crate::config::Config;

/// The config types' sources: their doc comments are the keys' descriptions.
const SOURCES: [&str; 8] = [
    include_str!("../config/mod.rs"),
    include_str!("../config/auth.rs"),
    include_str!("../config/rollup.rs"),
    include_str!("../config/http.rs"),
    include_str!("../config/kafka.rs"),
    include_str!("../config/lake.rs"),
    include_str!("../config/live.rs"),
    include_str!("../config/pipeline.rs"),
];

#[derive(Debug)]
struct Field {
    name: String,
    ty: String,
    doc: String,
}

/// `pub struct X { /// doc … pub field: Type, … }` for every struct in the sources.
fn structs() -> BTreeMap<String, Vec<Field>> {
    let mut out = BTreeMap::new();
    for src in SOURCES {
        let mut current: Option<(String, Vec<Field>)> = None;
        let mut doc = String::new();
        for line in src.lines() {
            let l = line.trim();
            if let Some(rest) = line.strip_prefix("pub struct ") {
                if let Some(name) = rest.strip_suffix(" {") {
                    current = Some((name.to_string(), Vec::new()));
                    doc.clear();
                }
                continue;
            }
            let Some((_, fields)) = current.as_mut() else {
                continue;
            };
            if line == "}" {
                if let Some((name, fields)) = current.take() {
                    out.insert(name, fields);
                }
            } else if let Some(d) = l.strip_prefix("///") {
                doc.push_str(d.trim());
                doc.push(' ');
            } else if let Some(f) = l.strip_prefix("pub ") {
                if let Some((name, ty)) = f.split_once(": ") {
                    fields.push(Field {
                        name: name.to_string(),
                        ty: ty.trim_end_matches(',').to_string(),
                        doc: std::mem::take(&mut doc).trim().to_string(),
                    });
                }
            } else if !l.starts_with("#[") {
                doc.clear();
            }
        }
    }
    out
}

struct Row {
    key: String,
    default: String,
    doc: String,
}

fn walk(
    types: &BTreeMap<String, Vec<Field>>,
    ty: &str,
    prefix: &str,
    defaults: Option<&Value>,
    rows: &mut Vec<Row>,
) {
    let Some(fields) = types.get(ty) else { return };
    for f in fields {
        let key = format!("{prefix}{}", f.name);
        let default = defaults.and_then(|d| d.get(&f.name));
        // A nested section, a map of sections (`auth.users.<name>`), a flattened map
        // (`windows.<kpi>`), or a key.
        if types.contains_key(&f.ty) {
            walk(types, &f.ty, &format!("{key}."), default, rows);
        } else if let Some(inner) =
            f.ty.strip_prefix("BTreeMap<String, ")
                .and_then(|t| t.strip_suffix('>'))
                .filter(|t| types.contains_key(*t))
        {
            // `kpis` is flattened into `[windows]`: its entries are the section's tables.
            let (sub_prefix, map) = if f.name == "kpis" {
                (format!("{prefix}<kpi>."), defaults)
            } else {
                (format!("{key}.<name>."), default)
            };
            let sample = map
                .and_then(|d| d.as_table())
                .and_then(|t| t.values().find(|v| v.is_table()));
            walk(types, inner, &sub_prefix, sample, rows);
        } else if f.name == "rules" && f.ty.contains("serde_json::Value") {
            // `[alerts.<rule>]`: the registry's rules with their own parameters.
            // Flattened into `[alerts]`: its entries are the section's tables.
            if let Some(t) = defaults.and_then(|d| d.as_table()) {
                for (rule, params) in t.iter().filter(|(_, v)| v.is_table()) {
                    for (p, v) in params.as_table().into_iter().flatten() {
                        rows.push(Row {
                            key: format!("{prefix}{rule}.{p}"),
                            default: show(Some(v), ""),
                            doc: format!(
                                "A parameter of the alert rule `{rule}` (see docs/alerts.md)."
                            ),
                        });
                    }
                }
            }
        } else {
            let default = if key.contains("<kpi>") {
                "per KPI, above".to_string()
            } else {
                show(default, &f.ty)
            };
            rows.push(Row {
                key,
                default,
                doc: f.doc.clone(),
            });
        }
    }
}

fn show(v: Option<&Value>, ty: &str) -> String {
    let secret = ty.contains("Secret");
    match v {
        None => "none".into(),
        Some(Value::String(s)) if s.is_empty() => "empty".into(),
        Some(Value::String(_)) if secret => "(set; see the key)".into(),
        Some(Value::String(s)) => format!("`{s}`"),
        Some(Value::Table(t)) if t.is_empty() => "`{}`".into(),
        Some(Value::Array(a)) if a.is_empty() => "`[]`".into(),
        Some(v) => format!("`{}`", v.to_string().replace('\n', " ")),
    }
}

fn env_name(key: &str) -> String {
    let k = key.replace("<kpi>", "KPI").replace("<name>", "NAME");
    format!("SHOPWATCH_{}", k.replace('.', "__").to_uppercase())
}

pub fn render() -> String {
    let types = structs();
    let defaults = Value::try_from(Config::default()).unwrap_or(Value::Table(Default::default()));
    let mut rows = Vec::new();
    walk(&types, "Config", "", Some(&defaults), &mut rows);
    let mut out = String::from(
        "# Configuration keys\n\n\
         Layers, last wins: built-in defaults < profile (`--profile`) < `shopwatch.toml` (or `--config FILE`)\n\
         < environment < command-line flags. Every key can be set in the environment as\n\
         `SHOPWATCH_<SECTION>__<KEY>`; a variable ending in `_FILE` names a file holding the value\n\
         (Docker and Kubernetes secrets: `SHOPWATCH_FLIGHT__PASSWORD_FILE=/run/secrets/flight`).\n\
         Unknown keys stop start-up naming the key and where it came from; `shopwatch config check`\n\
         prints the effective configuration with every secret redacted.\n\n\
         `<kpi>` is one of the registered KPIs: ",
    );
    let kpis: Vec<String> = shopwatch_actors::kpis::REGISTRY
        .iter()
        .map(|k| {
            let w = k.window();
            format!(
                "`{}` ({}/{}/{} s)",
                k.name(),
                w.size_s,
                w.slide_s,
                w.lateness_s
            )
        })
        .collect();
    out.push_str(&kpis.join(", "));
    out.push_str(" (size/slide/lateness defaults).\n\n| key | default | environment | meaning |\n|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            r.key,
            super::cell(&r.default),
            env_name(&r.key),
            super::cell(&r.doc)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key a user can set is in the reference, and every one says what it does.
    #[test]
    fn every_default_key_is_documented() {
        let types = structs();
        let defaults = Value::try_from(Config::default()).unwrap();
        let mut rows = Vec::new();
        walk(&types, "Config", "", Some(&defaults), &mut rows);
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        for k in [
            "kafka.brokers",
            "lake.s3.endpoint",
            "windows.<kpi>.size_s",
            "auth.users.<name>.role",
            "http.listen",
            "flight.query_timeout_s",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let undocumented: Vec<&str> = rows
            .iter()
            .filter(|r| r.doc.is_empty())
            .map(|r| r.key.as_str())
            .collect();
        assert!(
            undocumented.is_empty(),
            "keys without a doc comment: {undocumented:?}"
        );
    }
}
