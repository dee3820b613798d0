//! Integration tests of the pipeline crate: real SQLite catalog + warehouse, librdkafka's
//! in-process mock broker for supervision (the real-broker tests live in the server crate).

mod commit;
mod common;
mod compaction;
mod detector;
mod feed;
mod group;
mod index;
mod supervision;
