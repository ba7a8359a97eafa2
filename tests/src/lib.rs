//! End-to-end tests live in `tests/`; this library holds what they share: [`broker::Tansu`], a
//! real Kafka-protocol broker started per test; [`server`], the real binary as a child process;
//! and [`paths`], where the Python interpreter and scripts of the tests are.

pub mod broker;
pub mod paths;
pub mod server;
