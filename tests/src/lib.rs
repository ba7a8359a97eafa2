//! End-to-end tests live in `tests/`; this library holds what they share: [`broker::Tansu`], a
//! real Kafka-protocol broker started per test.

pub mod broker;
pub mod paths;
pub mod server;
