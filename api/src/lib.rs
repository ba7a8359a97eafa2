//! The `voxpop` process: HTTP API, CLI commands and the wiring of the core.
//!
//! In: HTTP requests and CLI arguments. Out: HTTP responses (JSON, problem+json), terminal output.
//! Only wiring and translation live here; every rule lives in the crate whose concept it serves.

pub mod auth;
pub mod bench;
pub mod commands;
pub mod demo_handling;
pub mod exchange;
pub mod flight;
pub mod handling;
pub mod http;
pub mod listener;
pub mod open311;
pub mod pages;
pub mod params;
pub mod problem;
pub mod ratelimit;
pub mod registers_api;
pub mod reports_api;
pub mod stack;
pub mod staff_pages;
pub mod topics_cmd;
pub mod webhooks;
