//! FATAL_ERROR (seed): one alert per FATAL error event, worded exactly as the seed did.

use super::{EventAlert, Rule, Trigger};
use crate::alerts::alert::{event_alert, Alert};
use crate::alerts::Params;
use crate::events::{EventKind, Micros};
use crate::windows::Fact;

pub const RULE: Rule = Rule {
    name: "FATAL_ERROR",
    key: "fatal_error",
    trigger: Trigger::Event {
        topic: EventKind::Errors,
        fire,
    },
    defaults: Params::Flag(true),
};

fn fire(fact: &Fact<'_>) -> Option<EventAlert> {
    let Fact::Error(e) = fact else {
        return None;
    };
    (e.severity == "FATAL").then(|| EventAlert {
        key: e.service_name.to_string(),
        // Exactly the seed's wording, so dashboards filtering on it keep working.
        description: format!(
            "Fatal error in service: {} - {}",
            e.service_name, e.error_message
        ),
        at: e.error_ts,
    })
}

/// The alert for the FATAL error at `topic`/`partition`/`offset`.
pub fn alert(
    topic: &str,
    partition: i32,
    offset: i64,
    service: &str,
    message: &str,
    error_ts: Micros,
) -> Alert {
    let e = crate::events::ErrorEvent {
        error_id: "".into(),
        service_name: service.into(),
        error_message: message.into(),
        severity: "FATAL",
        error_ts,
    };
    let fired = fire(&Fact::Error(&e)).unwrap_or(EventAlert {
        key: service.to_string(),
        description: String::new(),
        at: error_ts,
    });
    event_alert(RULE.name, topic, partition, offset, fired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::alert_id;

    #[test]
    fn the_seeds_wording_and_a_stable_id() {
        let f = alert("errors_topic", 1, 7, "payment", "db down", 5);
        assert_eq!(f.description, "Fatal error in service: payment - db down");
        assert_eq!(
            f.alert_id,
            alert_id("FATAL_ERROR", "payment", "errors_topic/1/7")
        );
        assert_eq!((f.source_partition, f.source_offset), (Some(1), Some(7)));
    }
}
