//! Sources that turn the outside world into events on the log.
//!
//! In: citizens' submissions (JSON from the HTTP API, generated demo petitions).
//! Out: [`voxpop_schema::Petition`] records appended to the event log's `voxpop.petitions` topic.
//! Guarantees: nothing invalid is appended (every problem is reported with its field); a
//! submission is acknowledged only once the log says it is durable; a repeated
//! `(channel, external_id)` returns the first petition's receipt instead of a duplicate.

pub mod code_lists;
pub mod demo;
pub mod import;
pub mod intake;

pub use intake::{Accepted, Intake, IntakeError, Receipt};
