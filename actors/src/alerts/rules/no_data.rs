//! NO_DATA: a topic without new records for a while (once per silence).

use super::{Rule, Trigger};
use crate::alerts::params::{Params, SilenceParams};

pub const RULE: Rule = Rule {
    name: "NO_DATA",
    key: "no_data",
    trigger: Trigger::Silence,
    defaults: Params::Silence(SilenceParams {
        enabled: true,
        after_s: 120,
    }),
};
