//! Alert groups and operators' actions end to end: FATAL bursts from a real producer, the
//! real `shopwatch run` paging a local webhook receiver, the page in headless Chromium (logged
//! in through its login page) to silence, acknowledge and undo, and a restart in between (the
//! state is in the lake).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// Request bodies a local webhook receiver got, as JSON.
type Pages = Arc<Mutex<Vec<serde_json::Value>>>;

async fn receiver() -> (String, Pages) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pages: Pages = Arc::default();
    let seen = pages.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // Headers, then exactly content-length bytes of body.
                let body = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break body.to_string();
                    }
                };
                if let Ok(v) = serde_json::from_str(&body) {
                    seen.lock().unwrap().push(v);
                }
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (format!("http://{addr}/hook"), pages)
}

fn pages_for(pages: &Pages, key: &str) -> Vec<serde_json::Value> {
    pages
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["alert_key"] == key)
        .cloned()
        .collect()
}

async fn wait_pages(pages: &Pages, key: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pages_for(pages, key).len() < n {
        assert!(
            Instant::now() < deadline,
            "{key}: {n} pages expected, got {:?}",
            pages.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Logins on loopback too, so the page's login, session and CSRF token are what acts.
const OPS_PW: &str = "ops password 1";
const VIEW_PW: &str = "viewer password 1";

fn start(
    brokers: &str,
    data: &std::path::Path,
    hook: &str,
    hashes: &(String, String),
) -> (Proc, String) {
    let env = [
        ("SHOPWATCH_AUTH__USERS__OPS__ROLE", "operator"),
        (
            "SHOPWATCH_AUTH__USERS__OPS__PASSWORD_HASH",
            hashes.0.as_str(),
        ),
        ("SHOPWATCH_AUTH__USERS__VIEW__ROLE", "viewer"),
        (
            "SHOPWATCH_AUTH__USERS__VIEW__PASSWORD_HASH",
            hashes.1.as_str(),
        ),
        ("SHOPWATCH_ALERTS__WEBHOOK_URL", hook),
        ("SHOPWATCH_ALERTS__GROUP_WAIT_S", "2"),
        ("SHOPWATCH_ALERTS__GROUP_INTERVAL_S", "600"),
        // Short, so that a repeat would be due when the silence and the acknowledgement are
        // what holds it back.
        ("SHOPWATCH_ALERTS__REPEAT_INTERVAL_S", "20"),
        ("SHOPWATCH_QUERY__MIN_INTERVAL_MS", "300"),
        ("SHOPWATCH_QUERY__REFRESH_MS", "1000"),
    ];
    let (run, http, _flight) = run_pipeline_env(brokers, data, &env);
    (run, http)
}

fn page(http: &str, data: &std::path::Path, step: &str) -> serde_json::Value {
    let (user, pw) = if step == "kept" {
        ("view", VIEW_PW)
    } else {
        ("ops", OPS_PW)
    };
    let artifacts = std::env::var("SHOPWATCH_TEST_ARTIFACTS")
        .unwrap_or_else(|_| format!("{}/../test-artifacts", env!("CARGO_MANIFEST_DIR")));
    let out = python(
        "alerts_check.py",
        &[
            "page",
            &format!("http://{http}/"),
            data.to_str().unwrap(),
            &artifacts,
            step,
            user,
            pw,
        ],
    );
    eprintln!("{step}: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["console errors"], 0, "{out}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_page_once_per_group_and_operators_silence_acknowledge_and_undo_from_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, brokers) = broker(dir.path());
    let data = dir.path().join("lake");
    let (hook, pages) = receiver().await;
    let hashes = (hash_password(OPS_PW), hash_password(VIEW_PW));
    let (mut run, http) = start(&brokers, &data, &hook, &hashes);
    let started = Instant::now();

    // A burst from one service is one group and one page carrying its count; a second service
    // opens its own.
    python(
        "alerts_check.py",
        &["produce", &brokers, "payment=30", "search=4"],
    );
    wait_pages(&pages, "payment", 1, Duration::from_secs(120)).await;
    wait_pages(&pages, "search", 1, Duration::from_secs(30)).await;
    let acted = page(&http, &data, "act");
    assert_eq!(
        acted["groups (page == lake recount)"]["payment"], 30,
        "{acted}"
    );
    assert_eq!(
        acted["groups (page == lake recount)"]["search"], 4,
        "{acted}"
    );
    // Nothing more pages while the groups stay open (well past the 2 s wait).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let payment = pages_for(&pages, "payment");
    assert_eq!(payment.len(), 1, "{payment:?}");
    assert_eq!(
        (
            payment[0]["count"].as_u64(),
            payment[0]["new_alerts"].as_u64()
        ),
        (Some(30), Some(30))
    );
    assert_eq!(payment[0]["sources"].as_array().map(Vec::len), Some(20));
    assert!(
        payment[0]["text"].as_str().unwrap().contains("30 alerts"),
        "{}",
        payment[0]
    );
    let search = pages_for(&pages, "search");
    assert_eq!((search.len(), search[0]["count"].as_u64()), (1, Some(4)));

    // The operators' word survives a restart: it is in the lake, not in the process.
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
    let (mut run, http) = start(&brokers, &data, &hook, &hashes);
    let kept = page(&http, &data, "kept");
    assert_eq!(kept["viewer buttons"], 0, "{kept}");

    // Silenced: recorded, not paged. Acknowledged: no repeat (both would be due: the first
    // pages are older than the 20 s repeat interval). A new service still pages.
    if let Some(rest) = Duration::from_secs(22).checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    python(
        "alerts_check.py",
        &["produce", &brokers, "payment=10", "search=3", "cart=3"],
    );
    wait_pages(&pages, "cart", 1, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        pages_for(&pages, "payment").len(),
        1,
        "a silenced group paged"
    );
    assert_eq!(
        pages_for(&pages, "search").len(),
        1,
        "an acknowledged group repeated"
    );
    assert_eq!(pages_for(&pages, "cart")[0]["count"], 3);

    // Undo both: the next alerts of the formerly silenced group page again as a repeat, only
    // the new ones counted as new.
    page(&http, &data, "undo");
    python("alerts_check.py", &["produce", &brokers, "payment=2"]);
    wait_pages(&pages, "payment", 2, Duration::from_secs(120)).await;
    let again = pages_for(&pages, "payment");
    assert_eq!(
        (
            again[1]["count"].as_u64(),
            again[1]["new_alerts"].as_u64(),
            again[1]["repeat"].as_bool()
        ),
        (Some(42), Some(2), Some(true)),
        "{again:?}"
    );
    assert_eq!(again[1]["group_id"], again[0]["group_id"], "the same group");

    // Every alert is still a row of `alerts`: 30 + 10 + 2, 4 + 3, 3.
    let lake = python(
        "alerts_check.py",
        &[
            "page",
            "-",
            data.to_str().unwrap(),
            "-",
            "recount",
            "-",
            "-",
        ],
    );
    let counts: serde_json::Value = serde_json::from_str(&lake).unwrap();
    assert_eq!(
        counts,
        serde_json::json!({"payment": 42, "search": 7, "cart": 3})
    );
    run.signal(libc::SIGTERM);
    assert!(run.wait_exit(Duration::from_secs(30)).unwrap().success());
}
