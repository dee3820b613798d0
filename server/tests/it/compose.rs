//! Static checks of the production-like stack (no Docker engine here, so it cannot be started):
//! docker-compose.yml, .env.example, the Dockerfile, Prometheus' rules and provisioning,
//! Grafana's, and the `compose` profile run through shopwatch's own configuration loader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::harness::BIN;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The secrets `.env.example` leaves empty, as a user sets them (the admin hash is of
/// `shopwatch123`).
const USER_SECRETS: [(&str, &str); 5] = [
    ("MINIO_ROOT_PASSWORD", "test-minio-root-7"),
    ("LAKE_S3_SECRET_KEY", "test-lake-secret-7"),
    ("DREMIO_PASSWORD", "testdremio77"),
    (
        "SHOPWATCH_ADMIN_PASSWORD_HASH",
        "$argon2id$v=19$m=19456,t=2,p=1$eDUUKY5eYjVFfnv9huE4dw$ue4/3g5lDg7GsW7/zPoRhp/Ux63CP/gXp02CA/UafUE",
    ),
    ("GRAFANA_ADMIN_PASSWORD", "test-grafana-7"),
];

/// `.env` as a user makes it: `.env.example` with the secrets set.
fn user_env(repo: &Path) -> HashMap<String, String> {
    let mut env = dotenv(&std::fs::read_to_string(repo.join(".env.example")).unwrap());
    for (k, v) in USER_SECRETS {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// Write `env` as a `.env` file (single quotes keep `$` literal).
fn write_dotenv(dir: &Path, env: &HashMap<String, String>) {
    let text: String = env.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(dir.join(".env"), text).unwrap();
}

/// `.env` as docker compose reads it.
fn dotenv(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()))
        .collect()
}

/// Compose takes a quoted value's inside (single quotes: literally, `$` included).
fn unquote(v: &str) -> &str {
    for q in ['\'', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Resolve `${VAR}` / `${VAR:-default}` / `${VAR:?error}` as compose does (`$$` is a literal `$`).
fn interpolate(s: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(format!("unclosed ${{ in {s:?}"))?;
            let expr = &body[..end];
            if let Some((name, error)) = expr.split_once(":?") {
                match env.get(name).filter(|v| !v.is_empty()) {
                    Some(v) => out.push_str(v),
                    None => return Err(format!("${{{name}}} must be set: {error}")),
                }
                rest = &body[end + 1..];
                continue;
            }
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match (env.get(name).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(format!("${{{name}}} has no value and no default")),
            }
            rest = &body[end + 1..];
        } else {
            return Err(format!("bare $ in {s:?}: use ${{VAR}} or $$"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn str_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_one_shot(svc: &Value) -> bool {
    svc.get("restart").and_then(Value::as_str) == Some("no")
}

/// Everything wrong with a compose file (empty = fine).
fn compose_problems(yaml: &str, env: &HashMap<String, String>, repo: &Path) -> Vec<String> {
    let mut p = Vec::new();
    let doc: Value = match serde_yaml::from_str(yaml) {
        Ok(d) => d,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return vec!["no services".into()];
    };
    let declared_volumes: BTreeSet<String> = doc
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(str_of).collect())
        .unwrap_or_default();
    let mut host_ports: BTreeMap<u16, String> = BTreeMap::new();
    let by_name: HashMap<String, &Value> = services
        .iter()
        .filter_map(|(k, v)| Some((str_of(k)?, v)))
        .collect();

    for (name, svc) in &by_name {
        // A pinned image: a tag that is not `latest`, or our own build.
        match svc.get("image").and_then(Value::as_str) {
            None => p.push(format!("{name}: no image")),
            Some(image) => match interpolate(image, env) {
                Err(e) => p.push(format!("{name}: image {e}")),
                Ok(image) => {
                    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                    let pinned = !tag.is_empty() && !tag.contains('/') && tag != "latest";
                    if !pinned && svc.get("build").is_none() {
                        p.push(format!("{name}: image {image} is not pinned to a tag"));
                    }
                }
            },
        }
        let one_shot = is_one_shot(svc);
        let has_health = svc.get("healthcheck").and_then(|h| h.get("test")).is_some();
        if !one_shot && !has_health {
            p.push(format!(
                "{name}: long-running service without a healthcheck"
            ));
        }
        if !one_shot && svc.get("restart").is_none() {
            p.push(format!(
                "{name}: long-running service without a restart policy"
            ));
        }
        match svc.get("depends_on") {
            None => {}
            Some(Value::Mapping(deps)) => {
                for (dep, cond) in deps {
                    let dep = str_of(dep).unwrap_or_default();
                    let Some(target) = by_name.get(&dep) else {
                        p.push(format!("{name}: depends on unknown service {dep}"));
                        continue;
                    };
                    let want = if is_one_shot(target) {
                        "service_completed_successfully"
                    } else {
                        "service_healthy"
                    };
                    let got = cond.get("condition").and_then(Value::as_str).unwrap_or("");
                    if got != want {
                        p.push(format!(
                            "{name}: depends on {dep} with condition {got:?}, want {want}"
                        ));
                    }
                }
            }
            Some(_) => p.push(format!(
                "{name}: depends_on is a list; use the map form with conditions"
            )),
        }
        for port in svc
            .get("ports")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let Some(spec) = str_of(port) else {
                p.push(format!("{name}: port entry is not a string"));
                continue;
            };
            let spec = match interpolate(&spec, env) {
                Ok(s) => s,
                Err(e) => {
                    p.push(format!("{name}: port {e}"));
                    continue;
                }
            };
            let parts: Vec<&str> = spec.split(':').collect();
            if parts.len() < 2 {
                p.push(format!("{name}: port {spec} publishes a random host port"));
                continue;
            }
            if parts.len() < 3 {
                p.push(format!("{name}: port {spec} publishes on every interface; bind it to ${{BIND_ADDRESS:-127.0.0.1}}"));
            }
            // A single port, or a range a scaled service's replicas take one each.
            let host = parts[parts.len() - 2];
            let range = match host.split_once('-') {
                Some((a, b)) => a.parse::<u16>().and_then(|a| Ok((a, b.parse::<u16>()?))),
                None => host.parse::<u16>().map(|h| (h, h)),
            };
            match range {
                Ok((first, last)) if first <= last => {
                    for host in first..=last {
                        if let Some(other) = host_ports.insert(host, name.clone()) {
                            p.push(format!("host port {host} used by {other} and {name}"));
                        }
                    }
                }
                _ => p.push(format!(
                    "{name}: host port in {spec} is not a number or range"
                )),
            }
        }
        for vol in svc
            .get("volumes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let spec = str_of(vol).unwrap_or_default();
            let source = spec.split(':').next().unwrap_or("");
            if source.starts_with("./") {
                if !repo.join(source).exists() {
                    p.push(format!(
                        "{name}: bind mount {source} does not exist in the repo"
                    ));
                }
            } else if !declared_volumes.contains(source) {
                p.push(format!(
                    "{name}: volume {source} is not a declared named volume"
                ));
            }
        }
        if let Some(env_map) = svc.get("environment").and_then(Value::as_mapping) {
            for (k, v) in env_map {
                if let Some(v) = str_of(v) {
                    if let Err(e) = interpolate(&v, env) {
                        p.push(format!("{name}: environment {:?}: {e}", str_of(k)));
                    }
                }
            }
        }
    }
    p
}

fn compose_env(svc: &Value, env: &HashMap<String, String>) -> Vec<(String, String)> {
    svc.get("environment")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((str_of(k)?, interpolate(&str_of(v)?, env).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_stack_is_pinned_healthy_ordered_and_clash_free() {
    let repo = root();
    let yaml = std::fs::read_to_string(repo.join("docker-compose.yml")).unwrap();
    let env = user_env(&repo);
    let problems = compose_problems(&yaml, &env, &repo);
    assert!(problems.is_empty(), "{problems:#?}");

    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    let services = doc["services"].as_mapping().unwrap();
    let names: BTreeSet<String> = services.keys().filter_map(str_of).collect();
    for needed in [
        "kafka",
        "kafka-init",
        "minio",
        "minio-init",
        "nessie",
        "dremio",
        "dremio-bootstrap",
        "shopwatch",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(needed), "service {needed} missing");
    }
    // The start order of ecosystem.md §1.1.
    let dep = |svc: &str, on: &str| {
        doc["services"][svc]["depends_on"]
            .get(on)
            .is_some_and(|_| true)
    };
    for (svc, on) in [
        ("kafka-init", "kafka"),
        ("minio-init", "minio"),
        ("nessie", "minio-init"),
        ("dremio", "nessie"),
        ("dremio-bootstrap", "dremio"),
        ("shopwatch", "kafka-init"),
        ("shopwatch", "dremio-bootstrap"),
        ("grafana", "prometheus"),
    ] {
        assert!(dep(svc, on), "{svc} must wait for {on}");
    }
    // Room for the final commit after SIGTERM (compose's default is 10 s).
    let grace = doc["services"]["shopwatch"]["stop_grace_period"]
        .as_str()
        .unwrap();
    let secs: u64 = grace.trim_end_matches('s').parse().unwrap();
    assert!(secs >= 30, "stop_grace_period {grace}");
    // Kafka: host and in-network listeners both advertised.
    let kafka = compose_env(&doc["services"]["kafka"], &env);
    let adv = &kafka
        .iter()
        .find(|(k, _)| k == "KAFKA_ADVERTISED_LISTENERS")
        .unwrap()
        .1;
    assert!(
        adv.contains("localhost:9092") && adv.contains("kafka:19092"),
        "{adv}"
    );
    // Nessie: no request signing (iceberg-rust cannot do it), keys from .env.
    let nessie = compose_env(&doc["services"]["nessie"], &env);
    assert!(nessie.contains(&(
        "nessie.catalog.service.s3.default-options.request-signing-enabled".into(),
        "false".into()
    )));
}

#[test]
fn compose_checks_catch_what_they_claim_to() {
    let repo = root();
    let env = user_env(&repo);
    let base = r#"
services:
  db:
    image: postgres:18
    restart: unless-stopped
    ports: ["127.0.0.1:5432:5432"]
    healthcheck: { test: ["CMD", "true"] }
  init:
    image: postgres:18
    restart: "no"
    depends_on: { db: { condition: service_healthy } }
  app:
    image: app:1.0
    restart: unless-stopped
    ports: ["127.0.0.1:${APP_PORT:-8080}:8080"]
    healthcheck: { test: ["CMD", "true"] }
    depends_on: { init: { condition: service_completed_successfully } }
    volumes: ["appdata:/data"]
volumes:
  appdata:
"#;
    assert!(compose_problems(base, &env, &repo).is_empty());
    let cases = [
        ("image: app:1.0", "image: app", "not pinned"),
        ("image: app:1.0", "image: app:latest", "not pinned"),
        (
            "    healthcheck: { test: [\"CMD\", \"true\"] }\n    depends_on: { init",
            "    depends_on: { init",
            "without a healthcheck",
        ),
        (
            "condition: service_completed_successfully",
            "condition: service_started",
            "want service_completed_successfully",
        ),
        (
            "depends_on: { db: { condition: service_healthy } }",
            "depends_on: [db]",
            "map form",
        ),
        ("${APP_PORT:-8080}:8080", "5432:8080", "host port 5432"),
        (
            "127.0.0.1:${APP_PORT:-8080}",
            "${APP_PORT:-8080}",
            "every interface",
        ),
        ("${APP_PORT:-8080}", "${APP_SECRET:?set it}", "must be set"),
        (
            "appdata:/data",
            "undeclared:/data",
            "not a declared named volume",
        ),
        (
            "${APP_PORT:-8080}",
            "${NO_SUCH_VAR}",
            "no value and no default",
        ),
    ];
    for (from, to, expect) in cases {
        let broken = base.replacen(from, to, 1);
        assert_ne!(broken, base, "case {expect}: pattern not found");
        let problems = compose_problems(&broken, &env, &repo);
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{expect}: {problems:#?}"
        );
    }
}

#[test]
fn compose_profile_and_env_pass_shopwatchs_own_config_check() {
    let repo = root();
    let yaml = std::fs::read_to_string(repo.join("docker-compose.yml")).unwrap();
    let env = user_env(&repo);
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    let svc_env = compose_env(&doc["services"]["shopwatch"], &env);
    let out = std::process::Command::new(BIN)
        .args(["config", "check"])
        .env_clear()
        .envs(svc_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "brokers = \"kafka:19092\"",
        "catalog = \"rest\"",
        "rest_uri = \"http://nessie:19120/iceberg\"",
        "endpoint = \"http://minio:9000\"",
        "backend = \"dremio\"",
        "endpoint = \"dremio:32010\"",
        "source = \"nessie_minio_catalog\"",
        "listen = \"0.0.0.0:8080\"",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    // Secrets from .env are redacted in the printout (the login's hash too).
    assert!(
        text.contains("[auth.users.admin]") && text.contains("role = \"operator\""),
        "{text}"
    );
    assert!(!text.contains(env["SHOPWATCH_ADMIN_PASSWORD_HASH"].as_str()));
    let secret = &env["MINIO_ROOT_PASSWORD"];
    assert!(!text.contains(secret.as_str()));
    assert!(!text.contains(env["DREMIO_PASSWORD"].as_str()));
    // The bootstrap's password passes Dremio's rule (checked by the binary before any request).
    let dremio_pw = &env["DREMIO_PASSWORD"];
    assert!(dremio_pw.len() >= 8 && dremio_pw.chars().any(|c| c.is_ascii_digit()));
}

#[test]
fn prometheus_grafana_and_dockerfile_fit_the_stack() {
    let repo = root();
    let yaml = std::fs::read_to_string(repo.join("docker-compose.yml")).unwrap();
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    let services: BTreeSet<String> = doc["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .filter_map(str_of)
        .collect();

    // Prometheus scrapes services that exist, shopwatch on its HTTP port.
    let prom: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo.join("deploy/prometheus/prometheus.yml")).unwrap(),
    )
    .unwrap();
    let mut targets = Vec::new();
    for job in prom["scrape_configs"].as_sequence().unwrap() {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            for t in sc["targets"].as_sequence().unwrap() {
                targets.push(t.as_str().unwrap().to_string());
            }
        }
        // Service discovery by DNS: every replica of a scaled service.
        for sd in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            let port = sd["port"].as_u64().unwrap();
            for n in sd["names"].as_sequence().unwrap() {
                targets.push(format!("{}:{port}", n.as_str().unwrap()));
            }
        }
    }
    // shopwatch on http.metrics_listen (9464), which it sets and does not publish.
    assert!(
        targets.contains(&"shopwatch:9464".to_string()),
        "{targets:?}"
    );
    // shopwatch scales (`--scale shopwatch=3`): no fixed container name or hostname, and a
    // host port range with a port per replica.
    let sw = &doc["services"]["shopwatch"];
    assert!(sw.get("hostname").is_none() && sw.get("container_name").is_none());
    let published = str_of(&sw["ports"][0]).unwrap();
    let env = user_env(&repo);
    let published = interpolate(&published, &env).unwrap();
    let (first, last) = published
        .split(':')
        .nth(1)
        .and_then(|r| r.split_once('-'))
        .map(|(a, b)| (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()))
        .unwrap_or_else(|| panic!("shopwatch publishes {published}, not a port range"));
    assert!(last - first >= 2, "{published}: fewer than 3 replicas fit");
    for t in &targets {
        let host = t.split(':').next().unwrap();
        assert!(
            host == "localhost" || services.contains(host),
            "scrape target {t} is no compose service"
        );
    }

    // Grafana: the dashboard's datasource uid is the provisioned one, and every shopwatch
    // metric it plots is one shopwatch exports.
    let ds: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            repo.join("deploy/grafana/provisioning/datasources/prometheus.yml"),
        )
        .unwrap(),
    )
    .unwrap();
    let uid = ds["datasources"][0]["uid"].as_str().unwrap();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("deploy/grafana/dashboards/shopwatch.json")).unwrap(),
    )
    .unwrap();
    // Every metric the process registers (the generated reference; a unit test keeps it current).
    let sources = std::fs::read_to_string(repo.join("docs/reference/metrics.md")).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for topic in [
        "throughput",
        "lag",
        "commit latency",
        "restarts",
        "dead letters",
        "alerts",
        "maintenance failures",
        "fenced",
        "owner",
        "re-read",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
    // One instance or all: every shopwatch series a panel reads is filtered by `$instance`.
    assert_eq!(dash["templating"]["list"][0]["name"], "instance");
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], uid);
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let reads = expr.matches("shopwatch_").count();
            let filtered = expr.matches("instance=~\"$instance\"").count();
            assert_eq!(reads, filtered, "panel {}: {expr}", panel["title"]);
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("shopwatch_") {
                    let base = name
                        .trim_end_matches("_bucket")
                        .trim_end_matches("_sum")
                        .trim_end_matches("_count");
                    assert!(
                        sources.contains(&format!("`shopwatch_{base}`")),
                        "panel {} uses unknown metric shopwatch_{name}",
                        panel["title"]
                    );
                }
            }
        }
    }

    // Dockerfile: pinned bases, multi-stage, and every COPY source exists.
    let docker = std::fs::read_to_string(repo.join("Dockerfile")).unwrap();
    let froms: Vec<&str> = docker
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    for f in &froms {
        let image = f.split_whitespace().next().unwrap();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "unpinned base {image}"
        );
    }
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(repo.join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
}

/// `docker-compose config` (Debian's docker-compose 1.29, which validates without an engine)
/// in `dir`; (success, stdout + stderr).
fn compose_config(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new("docker-compose")
        .arg("config")
        .current_dir(dir)
        // Only .env may decide; nothing from the test runner's environment.
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_FILE")
        .output()
        .expect("docker-compose not found: run .ci/run (it apt-installs docker-compose)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn docker_compose_itself_validates_the_stack() {
    let repo = root();
    let yaml = std::fs::read_to_string(repo.join("docker-compose.yml")).unwrap();
    // As a user runs it: the compose file beside a `.env` made from `.env.example`.
    let stack = |yaml: &str, env: &HashMap<String, String>| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), yaml).unwrap();
        write_dotenv(dir.path(), env);
        compose_config(dir.path())
    };
    let env = user_env(&repo);
    let (ok, out) = stack(&yaml, &env);
    assert!(ok, "docker-compose config rejects the stack:\n{out}");
    // It resolved every service with .env's values (none left as ${…}).
    for service in [
        "kafka:",
        "minio:",
        "nessie:",
        "dremio:",
        "shopwatch:",
        "grafana:",
    ] {
        assert!(out.contains(service), "{service} missing:\n{out}");
    }
    assert!(!out.contains("${"), "unresolved variable:\n{out}");
    // The project name lives in .env, which every compose version reads.
    assert_eq!(
        env.get("COMPOSE_PROJECT_NAME").map(String::as_str),
        Some("shopwatch")
    );
    // Nothing is published on every interface by default: compose's own resolution says
    // 127.0.0.1 for every published port, and the metrics port is not among them.
    let resolved: Value = serde_yaml::from_str(&out).unwrap();
    let mut published = 0;
    for (name, svc) in resolved["services"].as_mapping().unwrap() {
        for port in svc["ports"].as_sequence().into_iter().flatten() {
            let spec = str_of(port).unwrap_or_else(|| format!("{port:?}"));
            assert!(spec.starts_with("127.0.0.1:"), "{name:?} publishes {spec}");
            assert!(
                !spec.contains("9464"),
                "{name:?} publishes the metrics port"
            );
            published += 1;
        }
    }
    assert!(published >= 10, "{published} ports");
    // Opting in is one setting.
    let mut open = env.clone();
    open.insert("BIND_ADDRESS".into(), "0.0.0.0".into());
    let (ok, out) = stack(&yaml, &open);
    assert!(ok && out.contains("0.0.0.0:8080-8082:8080"), "{out}");
    // Without the secrets the stack refuses to start, naming each.
    for (secret, _) in USER_SECRETS {
        let mut missing = env.clone();
        missing.insert(secret.to_string(), String::new());
        let (ok, out) = stack(&yaml, &missing);
        assert!(!ok && out.contains(secret), "{secret} unset: {out}");
    }

    // The tool really checks: a copy with a misspelt key and one with the top-level `name:`
    // key (which 1.x does not know) are both refused.
    for (label, broken) in [
        (
            "misspelt key",
            yaml.replacen("    healthcheck:", "    healthchek:", 1),
        ),
        ("top-level name", format!("name: shopwatch\n{yaml}")),
    ] {
        let (ok, out) = stack(&broken, &env);
        assert!(!ok, "{label}: docker-compose accepted it:\n{out}");
    }
}

#[test]
fn the_stack_is_safe_by_default() {
    let repo = root();
    // No working password is tracked: .env.example leaves every secret empty, and .env is
    // ignored.
    let example = dotenv(&std::fs::read_to_string(repo.join(".env.example")).unwrap());
    for (secret, _) in USER_SECRETS {
        assert_eq!(
            example.get(secret).map(String::as_str),
            Some(""),
            "{secret} in .env.example"
        );
    }
    let ignore = std::fs::read_to_string(repo.join(".gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == ".env"),
        ".env not in .gitignore"
    );
    let yaml = std::fs::read_to_string(repo.join("docker-compose.yml")).unwrap();
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    let env = user_env(&repo);
    // MinIO's root keys stay with MinIO and its one-shot; the others use the lake account.
    for (name, svc) in doc["services"].as_mapping().unwrap() {
        let name = str_of(name).unwrap();
        let vars = compose_env(svc, &env);
        let uses_root = vars.iter().any(|(_, v)| v == "test-minio-root-7");
        assert_eq!(
            uses_root,
            name == "minio" || name == "minio-init",
            "{name} and MinIO's root password"
        );
    }
    // shopwatch: /metrics on its own unpublished listener, no public metrics on the page's port.
    let sw = compose_env(&doc["services"]["shopwatch"], &env);
    assert!(
        sw.contains(&(
            "SHOPWATCH_HTTP__METRICS_LISTEN".into(),
            "0.0.0.0:9464".into()
        )),
        "{sw:?}"
    );
    assert!(!sw
        .iter()
        .any(|(k, v)| k == "SHOPWATCH_AUTH__PUBLIC_METRICS" && v == "true"));
    // Monitoring starts whatever shopwatch's health.
    assert!(doc["services"]["prometheus"].get("depends_on").is_none());
    // The alerting rules are mounted, valid, and their unit tests pass (each rule fires on a
    // bad instance and stays quiet on a healthy one).
    assert!(yaml.contains("./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml"));
    let prom = repo.join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&prom)
            .output()
            .expect("promtool not found: run .ci/run (it apt-installs prometheus)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("promtool {}: {text}", args.join(" "));
        assert!(out.status.success(), "promtool {args:?}: {text}");
    }
    // Every rule has a test that fires it.
    let rules: Value =
        serde_yaml::from_str(&std::fs::read_to_string(prom.join("rules.yml")).unwrap()).unwrap();
    let tests = std::fs::read_to_string(prom.join("rules.test.yml")).unwrap();
    for rule in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let name = rule["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "no test for {name}"
        );
    }
}
