//! The national data schema of voxpop, shared by every other crate.
//!
//! In: raw submissions (JSON bytes) and the reference code lists compiled into the binary.
//! Out: validated [`Petition`] records, their JSON wire format, their Arrow schema and batches,
//! [`Units`] look-ups (2025 codes, pre-2025 codes through the crosswalk), and the topic
//! [`Taxonomy`] petitions are filed under.
//! Guarantees: text is NFC; validation reports every problem with its field; a petition that
//! passes [`Petition::validate`] names a commune in force and its province.

mod borrowed_json;
pub mod calendar;
mod cells;
pub mod datasets;
pub mod error;
pub mod petition;
pub mod privacy;
pub mod registers;
pub mod reports;
pub mod short_keys;
pub mod text;
pub mod topics;
pub mod units;
pub mod workflow;

pub use error::{FieldError, SchemaError, SchemaResult};
pub use petition::{Channel, Contact, Petition, SCHEMA_VERSION, Submission};
pub use topics::{Taxonomy, Topic};
pub use units::{CodeVersion, Commune, Province, Units};
