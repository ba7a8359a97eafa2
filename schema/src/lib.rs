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

/// A file of the source tree, e.g. `source_file("connectors/data/vntc_train_sample.jsonl")`,
/// for tests and benches. Found from the running package's `CARGO_MANIFEST_DIR` (cargo and
/// nextest set it for a test process, and every package sits one level below the workspace
/// root), else from where this crate was compiled. Read at run time because checkouts that
/// share one target directory reuse each other's unchanged test binaries, whose compile-time
/// path may name another checkout, or one that no longer exists.
pub fn source_file(relative: &str) -> std::path::PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from);
    package.join("..").join(relative)
}
