//! End-to-end tests: real brokers, real files, the real binary.

mod log_contract;
