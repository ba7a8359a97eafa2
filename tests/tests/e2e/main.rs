//! End-to-end tests: real brokers, real files, the real binary.

mod access;
mod cli;
mod code_lists;
mod connections;
mod crash;
mod demo;
mod exchange;
mod handling;
mod intake;
mod kafka_serve;
mod log_contract;
mod open311;
mod pages;
mod pipeline;
mod readers;
mod registers;
mod reports;
mod summary;
