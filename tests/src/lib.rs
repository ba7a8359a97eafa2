//! End-to-end tests live in `tests/`; this library holds what they share: [`broker::Tansu`], a
//! real Kafka-protocol broker started per test; [`server`], the real binary as a child process;
//! [`paths`], where the Python interpreter and scripts of the tests are; and [`problem`], reading
//! the problems bad requests get.

pub mod broker;
pub mod paths;
pub mod problem;
pub mod server;
