//! Optional alert webhook (Slack-compatible JSON body). Alerts are handed over after they are
//! committed, through a bounded queue that never blocks the detector; delivery retries with
//! backoff and every outcome is counted. The URL is a secret: it is never logged.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tracing::warn;

use crate::alerts::Alert;
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

/// Body: `text` is what Slack shows; the other fields are for machines.
#[derive(Debug, Serialize, PartialEq)]
pub struct Body {
    pub text: String,
    pub alert_id: String,
    pub alert_type: &'static str,
    pub alert_key: String,
    pub metric_value: f64,
    pub alert_timestamp: String,
}

impl From<&Alert> for Body {
    fn from(a: &Alert) -> Self {
        Body {
            text: format!(":rotating_light: [{}] {}", a.alert_type, a.description),
            alert_id: a.alert_id.clone(),
            alert_type: a.alert_type,
            alert_key: a.alert_key.clone(),
            metric_value: a.metric_value,
            alert_timestamp: chrono::DateTime::from_timestamp_micros(a.alert_timestamp)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Webhook {
    tx: mpsc::Sender<Body>,
    metrics: Metrics,
}

impl Webhook {
    /// Start the delivery task (needs a tokio runtime).
    pub fn start(params: WebhookParams, metrics: Metrics) -> Result<Webhook, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(params.timeout).build()?;
        let (tx, mut rx) = mpsc::channel::<Body>(params.queue.max(1));
        let m = metrics.clone();
        tokio::spawn(async move {
            while let Some(body) = rx.recv().await {
                let outcome = deliver(&client, &params, &body).await;
                m.webhook.with_label_values(&[outcome]).inc();
            }
        });
        Ok(Webhook { tx, metrics })
    }

    /// Queue alerts for delivery; when the queue is full they are dropped and counted.
    pub fn offer(&self, alerts: &[Alert]) {
        for a in alerts {
            if self.tx.try_send(a.into()).is_err() {
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
                warn!(status = r.status().as_u16(), alert_id = %body.alert_id, "webhook refused the alert");
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
        hook.offer(&[crate::alerts::rules::fatal_error::alert(
            "errors_topic",
            0,
            5,
            "db",
            "disk full",
            0,
        )]);
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
        hook.offer(&[crate::alerts::rules::fatal_error::alert(
            "errors_topic",
            0,
            5,
            "db",
            "x",
            0,
        )]);
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
