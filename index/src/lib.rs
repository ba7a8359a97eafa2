//! Full-text search over petitions: a tantivy index derived from the national schema.
//!
//! In: [`voxpop_schema::Petition`] records with the lake (Delta) version they were read at,
//! through [`PetitionIndex::apply`] (incremental) or [`PetitionIndex::clear`] +
//! [`PetitionIndex::add_bulk`] + [`PetitionIndex::commit`] (rebuild); and [`SearchRequest`]s.
//!
//! Out: [`SearchResults`] (ranked [`Hit`]s with an HTML snippet, the total, hits per province),
//! stored petitions by id ([`PetitionIndex::get`]), and the lake version the index holds
//! ([`PetitionIndex::checkpoint`]).
//!
//! Guarantees:
//! - The checkpoint is in the tantivy commit payload, so it moves atomically with the documents:
//!   after a crash the index holds exactly the petitions up to its checkpoint, and replaying the
//!   lake from there is safe because `apply` is idempotent (upsert by id).
//! - When `apply` or `commit` returns, the documents are searchable through the same
//!   [`PetitionIndex`].
//! - A search never fails or panics on what a citizen can type: query syntax errors are
//!   parsed leniently; only a query over [`MAX_QUERY_CHARS`] is refused.
//! - Vietnamese matching (see [`analysis`]): "dat dai" finds "đất đai"; a query with diacritics
//!   ranks exact matches first; "Hoà" and "Hòa" are the same word; phrases match syllables.

pub mod analysis;
pub mod error;
mod index;
pub mod schema;
mod search;

pub use error::{IndexError, IndexResult};
pub use index::{DEFAULT_MEMORY_BUDGET_BYTES, MAX_SEARCH_THREADS, PetitionIndex, StateSource, WriterOptions};
pub use schema::IndexedPetition;
pub use search::{
    DEFAULT_LIMIT, EXACT_BOOST, FacetCount, Hit, MAX_LIMIT, MAX_OFFSET, MAX_QUERY_CHARS, PHRASE_BOOST, SearchRequest,
    SearchResults, TITLE_BOOST, TopicCount, html_escape,
};

#[cfg(test)]
mod tests;
