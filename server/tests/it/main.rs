//! End-to-end tests against the real broker process (Tansu via `shopwatch broker`), the real
//! `shopwatch run` process, and an independent reader (pyiceberg: its SqlCatalog, or the REST catalog of a real SeaweedFS).

mod access;
mod alerts;
mod bootstrap;
mod cli;
mod compose;
mod corpus;
mod dashboard;
mod drill;
mod e2e;
mod harness;
mod hostile;
mod kpis;
mod maintenance;
mod migrate;
mod recovery;
mod s3;
mod seaweed;
