//! Optional alert webhook (Slack-compatible JSON body), one delivery per page of an alert group.
//! Pages are handed over after their alerts are committed, through a bounded queue that never blocks the detector; delivery retries with
//! backoff and every outcome is counted. The URL is a secret: it is never logged.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use tokio::sync::mpsc;
use tracing::warn;

use crate::alerts::grouping::{Notification, Source};
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct WebhookParams {
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    pub queue: usize,
}

impl std::fmt::Debug for WebhookParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookParams")
            .field("url", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Body: `text` is what Slack shows; the other fields are for machines. One body per page of
/// an alert group (a burst pages once, with its count); `alert_id` and the fields after it are
/// the group's newest alert, as single-alert bodies had them.
#[derive(Debug, Serialize, PartialEq)]
pub struct Body {
    pub text: String,
    pub group_id: String,
    pub count: u64,
    /// Alerts that joined since the group's last page.
    pub new_alerts: u64,
    pub repeat: bool,
    pub first_at: String,
    pub last_at: String,
    /// The newest alerts behind the group (at most [`crate::alerts::grouping::MAX_SOURCES`]).
    pub sources: Vec<Source>,
    pub alert_id: String,
    pub alert_type: String,
    pub alert_key: String,
    pub description: String,
    pub metric_value: f64,
    pub alert_timestamp: String,
}

/// Characters of a description shown in `text` at most.
const TEXT_CHARS: usize = 500;

/// Producer text made safe for Slack's message format: `&`, `<` and `>` escaped (so an error
/// message cannot `<!channel>` everyone or hide a link), cut at [`TEXT_CHARS`] characters.
pub fn slack_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(TEXT_CHARS) + 8);
    for (i, c) in s.chars().enumerate() {
        if i == TEXT_CHARS {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn rfc3339(t: crate::events::Micros) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

impl From<&Notification> for Body {
    fn from(n: &Notification) -> Self {
        let g = &n.group;
        let description = slack_text(&g.description);
        let what = if g.count == 1 {
            description
        } else {
            format!(
                "{} alerts from {} to {} UTC; newest: {}",
                g.count,
                short_time(g.first_at),
                short_time(g.last_at),
                description
            )
        };
        Body {
            text: format!(":rotating_light: [{}] {}", g.rule, what),
            group_id: g.group_id.clone(),
            count: g.count,
            new_alerts: n.new_alerts,
            repeat: n.repeat,
            first_at: rfc3339(g.first_at),
            last_at: rfc3339(g.last_at),
            sources: g.sources.clone(),
            alert_id: g
                .sources
                .last()
                .map(|s| s.alert_id.clone())
                .unwrap_or_default(),
            alert_type: g.rule.clone(),
            alert_key: g.key.clone(),
            description: g.description.clone(),
            metric_value: g.metric_value,
            alert_timestamp: rfc3339(g.last_at),
        }
    }
}

fn short_time(t: crate::events::Micros) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

#[derive(Clone, Debug)]
pub struct Webhook {
    tx: mpsc::Sender<Body>,
    metrics: Metrics,
}

/// The delivery side: pages from the queue to the webhook, one at a time, with retries. It runs
/// as a supervised service (restarted, it picks the queue up where it was).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    params: WebhookParams,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Body>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("webhook::Sender")
    }
}

impl Sender {
    /// Deliver until `stop` is notified.
    pub async fn run(&self, stop: Arc<tokio::sync::Notify>) {
        let mut queue = self.queue.lock().await;
        loop {
            let body = tokio::select! {
                _ = stop.notified() => return,
                b = queue.recv() => match b {
                    Some(b) => b,
                    None => return,
                },
            };
            let outcome = deliver(&self.client, &self.params, &body).await;
            self.metrics.webhook.with_label_values(&[outcome]).inc();
        }
    }
}

impl Webhook {
    /// The queue pages go into and the sender that delivers them.
    pub fn new(
        params: WebhookParams,
        metrics: Metrics,
    ) -> Result<(Webhook, Sender), reqwest::Error> {
        let client = reqwest::Client::builder().timeout(params.timeout).build()?;
        let (tx, rx) = mpsc::channel::<Body>(params.queue.max(1));
        let sender = Sender {
            client,
            params,
            queue: Arc::new(tokio::sync::Mutex::new(rx)),
            metrics: metrics.clone(),
        };
        Ok((Webhook { tx, metrics }, sender))
    }

    /// The queue and its sender running in a task of its own (tests).
    #[cfg(test)]
    pub fn start(params: WebhookParams, metrics: Metrics) -> Result<Webhook, reqwest::Error> {
        let (hook, sender) = Self::new(params, metrics)?;
        tokio::spawn(async move { sender.run(Arc::new(tokio::sync::Notify::new())).await });
        Ok(hook)
    }

    /// Queue group pages for delivery; when the queue is full they are dropped and counted.
    pub fn offer(&self, pages: &[Notification]) {
        for n in pages {
            if self.tx.try_send(n.into()).is_err() {
                self.metrics.webhook.with_label_values(&["dropped"]).inc();
            }
        }
    }
}

async fn deliver(client: &reqwest::Client, p: &WebhookParams, body: &Body) -> &'static str {
    let mut backoff = p.backoff;
    for attempt in 0..=p.retries {
        if attempt > 0 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        match client.post(&p.url).json(body).send().await {
            Ok(r) if r.status().is_success() => return "ok",
            // A 4xx other than 429 will not get better by retrying.
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                warn!(status = r.status().as_u16(), group_id = %body.group_id, "webhook refused the page");
                return "failed";
            }
            Ok(r) => warn!(
                status = r.status().as_u16(),
                attempt, "webhook error, retrying"
            ),
            // reqwest errors can include the URL: log only the kind.
            Err(e) => warn!(
                timeout = e.is_timeout(),
                connect = e.is_connect(),
                attempt,
                "webhook unreachable, retrying"
            ),
        }
    }
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A tiny HTTP server answering with `statuses` in turn and recording request bodies.
    async fn server(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        tokio::spawn(async move {
            for status in statuses {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 65536];
                let mut n = 0;
                // Read until the JSON body is complete (it ends with '}').
                loop {
                    let k = sock.read(&mut buf[n..]).await.unwrap();
                    n += k;
                    if k == 0 || buf[..n].ends_with(b"}") {
                        break;
                    }
                }
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                b.lock()
                    .unwrap()
                    .push(req.split("\r\n\r\n").nth(1).unwrap_or("").to_string());
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        (format!("http://{addr}/hook"), bodies)
    }

    /// The pages of `alerts` once their group's wait is over.
    fn pages(alerts: &[crate::alerts::Alert]) -> Vec<Notification> {
        use crate::alerts::{GroupParams, Grouper, Mute};
        let mut g = Grouper::new(
            GroupParams {
                group_wait: 0,
                group_interval: 300_000_000,
                repeat_interval: 3_600_000_000,
            },
            Default::default(),
        );
        g.add(alerts, 0);
        g.due(0, &|_| Mute::None).0
    }

    #[test]
    fn a_burst_is_one_body_with_its_count_and_sources() {
        let burst: Vec<_> = (0..30)
            .map(|i| {
                crate::alerts::rules::fatal_error::alert(
                    "errors",
                    1,
                    i,
                    "db",
                    "down",
                    i * 1_000_000,
                )
            })
            .collect();
        let pages = pages(&burst);
        assert_eq!(pages.len(), 1);
        let body = Body::from(&pages[0]);
        assert_eq!((body.count, body.new_alerts, body.repeat), (30, 30, false));
        assert_eq!(body.group_id, burst[0].alert_id);
        assert_eq!(body.alert_id, burst[29].alert_id);
        assert_eq!(body.sources.len(), crate::alerts::grouping::MAX_SOURCES);
        assert_eq!(body.sources.last().and_then(|s| s.offset), Some(29));
        assert_eq!(
            body.text,
            ":rotating_light: [FATAL_ERROR] 30 alerts from 00:00:00 to 00:00:29 UTC; newest: Fatal error in service: db - down"
        );
        assert_eq!(body.first_at, "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn producer_text_cannot_ping_everyone_or_flood_the_channel() {
        assert_eq!(
            slack_text("db <!channel> & <http://evil|click>"),
            "db &lt;!channel&gt; &amp; &lt;http://evil|click&gt;"
        );
        let long = slack_text(&"é".repeat(10_000));
        assert_eq!(long.chars().count(), TEXT_CHARS + 1);
        assert!(long.ends_with('…'));
    }

    fn params(url: String) -> WebhookParams {
        WebhookParams {
            url,
            timeout: Duration::from_secs(2),
            retries: 2,
            backoff: Duration::from_millis(10),
            queue: 8,
        }
    }

    #[tokio::test]
    async fn retries_server_errors_then_delivers_a_slack_body() {
        let (url, bodies) = server(vec![500, 503, 200]).await;
        let metrics = Metrics::new();
        let hook = Webhook::start(params(url), metrics.clone()).unwrap();
        hook.offer(&pages(&[crate::alerts::rules::fatal_error::alert(
            "errors_topic",
            0,
            5,
            "db",
            "disk full",
            0,
        )]));
        for _ in 0..200 {
            if metrics.webhook.with_label_values(&["ok"]).get() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.webhook.with_label_values(&["ok"]).get(), 1);
        let bodies = bodies.lock().unwrap();
        assert_eq!(bodies.len(), 3);
        let v: serde_json::Value = serde_json::from_str(&bodies[2]).unwrap();
        assert_eq!(
            v["text"],
            ":rotating_light: [FATAL_ERROR] Fatal error in service: db - disk full"
        );
        assert_eq!(v["alert_type"], "FATAL_ERROR");
    }

    #[tokio::test]
    async fn client_errors_are_not_retried_and_are_counted() {
        let (url, bodies) = server(vec![404, 200]).await;
        let metrics = Metrics::new();
        let hook = Webhook::start(params(url), metrics.clone()).unwrap();
        hook.offer(&pages(&[crate::alerts::rules::fatal_error::alert(
            "errors_topic",
            0,
            5,
            "db",
            "x",
            0,
        )]));
        for _ in 0..200 {
            if metrics.webhook.with_label_values(&["failed"]).get() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(metrics.webhook.with_label_values(&["failed"]).get(), 1);
        assert_eq!(bodies.lock().unwrap().len(), 1);
    }
}
