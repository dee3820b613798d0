//! `http.md`: every HTTP route (the route table the router is built from) and every websocket
//! message type (the hub's), with the KPIs' declared cards and charts.

use crate::http::{Access, ROUTES};
use crate::live::tasks::hub::Message;

pub fn render() -> String {
    let mut out = String::from(
        "# HTTP routes and websocket messages\n\n\
         Access applies when logins are configured (always off loopback); on loopback without\n\
         logins every route is open to the local operator. Errors are JSON with a `request_id`\n\
         (also in `x-request-id`); a 5xx says only \"internal error\".\n\n\
         | route | methods | access | what |\n|---|---|---|---|\n",
    );
    for r in ROUTES {
        let access = match r.access {
            Access::Open => "open",
            Access::Login => "login or token",
            Access::Operator => "operator role",
            Access::Metrics => "login or token, unless `auth.public_metrics`",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.path,
            r.methods,
            access,
            super::cell(r.doc)
        ));
    }
    out.push_str(
        "\nBuilds with `--features failpoints` also serve `/drill/actor` and `/drill/failpoints` behind\n\
         `drill.token` (fault injection for drills; never in a release build).\n\n\
         ## Websocket messages\n\n\
         Every frame is `{\"type\", \"v\": 1, \"seq\", \"ts\", \"ts_ms\", \"data\"}`. A client first gets a\n\
         `snapshot` holding the newest message of every kept type, then each message as it changes;\n\
         a slow client's queue is replaced by a fresh snapshot.\n\n\
         | type | what |\n|---|---|\n",
    );
    for m in Message::ALL {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            m.as_str(),
            super::cell(m.doc())
        ));
    }
    out.push_str("\n## What each KPI shows\n\nDeclared in the KPI's own file (`actors/src/kpis/`); the page renders them generically.\n\n| KPI | table | cards | charts |\n|---|---|---|---|\n");
    for k in shopwatch_actors::kpis::REGISTRY.iter() {
        let (cards, charts) = match k.view() {
            Some(v) => (
                v.cards
                    .iter()
                    .map(|c| format!("`{}`", c.id))
                    .collect::<Vec<_>>()
                    .join(", "),
                v.charts
                    .iter()
                    .map(|c| format!("`{}`", c.id))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            None => ("—".into(), "—".into()),
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            k.name(),
            k.table(),
            cards,
            charts
        ));
    }
    out
}
