//! The tantivy schema derived from [`Petition`], and the mapping between the two.
//!
//! Title and body are indexed twice (see [`crate::analysis`]): the field named like the record's
//! field (`title`, `body`) holds the folded view and the original text (stored, so results and
//! snippets can show it); `title_exact` / `body_exact` hold the exact view and store nothing.

use chrono::{DateTime, Utc};
use tantivy::TantivyDocument;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Facet, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions, Value,
};
use uuid::Uuid;
use voxpop_schema::Petition;

use crate::analysis::{EXACT_TOKENIZER, FOLDED_TOKENIZER};
use crate::error::{IndexError, IndexResult};

/// Field handles of the petition index, resolved once from the schema.
#[derive(Debug, Clone)]
pub struct PetitionFields {
    pub schema: Schema,
    /// The petition's UUID as hyphenated lower-case text: the key for deletes and [`get`].
    ///
    /// [`get`]: crate::PetitionIndex::get
    pub id: Field,
    pub title: Field,
    pub title_exact: Field,
    pub body: Field,
    pub body_exact: Field,
    pub province_code: Field,
    pub commune_code: Field,
    /// `/{province_code}`: counted by the facet collector for per-province hit counts.
    pub province: Field,
    pub received_at: Field,
    pub language: Field,
    /// Topic code assigned by the pipeline (absent when unclassified).
    pub topic: Field,
    /// `/{topic}`: counted for per-topic hit counts.
    pub topic_facet: Field,
    /// What the citizen types to follow the petition (normalised form): how the citizen's
    /// status page finds it.
    pub tracking_code: Field,
    /// The handling state (`received`, `accepted`, ... see `voxpop_schema::workflow::State`):
    /// the index follows the handling pipeline, so searches can filter by it.
    pub state: Field,
}

fn text_view(tokenizer: &str, record: IndexRecordOption) -> TextOptions {
    TextOptions::default()
        .set_indexing_options(TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record))
}

impl PetitionFields {
    /// The schema every petition index is created with. Changing it makes existing indexes fail
    /// to open with [`IndexError::SchemaMismatch`]: they must be rebuilt from the lake.
    pub fn new() -> Self {
        let mut builder = Schema::builder();
        let id = builder.add_text_field("id", STRING | STORED);
        // Positions in the folded views and the exact title: phrases are how multi-syllable words
        // are matched. The exact body view only ranks (a syllable typed with its diacritics
        // scores higher where the body has it so), so it keeps frequencies without positions:
        // positions of every body syllable twice would double the cost of indexing.
        let positions = IndexRecordOption::WithFreqsAndPositions;
        let title = builder.add_text_field("title", text_view(FOLDED_TOKENIZER, positions).set_stored());
        let title_exact = builder.add_text_field("title_exact", text_view(EXACT_TOKENIZER, positions));
        let body = builder.add_text_field("body", text_view(FOLDED_TOKENIZER, positions).set_stored());
        let body_exact = builder.add_text_field("body_exact", text_view(EXACT_TOKENIZER, IndexRecordOption::WithFreqs));
        let province_code = builder.add_text_field("province_code", STRING | STORED | FAST);
        let commune_code = builder.add_text_field("commune_code", STRING | STORED | FAST);
        let province = builder.add_facet_field("province", INDEXED);
        // Microseconds: the lake's precision, so a range filter agrees with a SQL filter on the lake.
        let received_at = builder.add_date_field(
            "received_at",
            DateOptions::default().set_indexed().set_stored().set_fast().set_precision(DateTimePrecision::Microseconds),
        );
        let language = builder.add_text_field("language", STRING | STORED);
        let topic = builder.add_text_field("topic", STRING | STORED | FAST);
        let topic_facet = builder.add_facet_field("topic_facet", INDEXED);
        let tracking_code = builder.add_text_field("tracking_code", STRING);
        let state = builder.add_text_field("state", STRING | STORED | FAST);
        PetitionFields {
            schema: builder.build(),
            id,
            title,
            title_exact,
            body,
            body_exact,
            province_code,
            commune_code,
            province,
            received_at,
            language,
            topic,
            topic_facet,
            tracking_code,
            state,
        }
    }

    /// The tantivy document for one petition in handling `state`.
    pub fn document(&self, petition: &Petition, state: &str) -> TantivyDocument {
        let mut doc = TantivyDocument::new();
        doc.add_text(self.state, state);
        doc.add_text(self.id, petition.id.to_string());
        doc.add_text(self.title, &petition.title);
        doc.add_text(self.title_exact, &petition.title);
        doc.add_text(self.body, &petition.body);
        doc.add_text(self.body_exact, &petition.body);
        doc.add_text(self.province_code, &petition.province_code);
        doc.add_text(self.commune_code, &petition.commune_code);
        doc.add_text(self.tracking_code, &petition.tracking_code);
        if !petition.province_code.is_empty() {
            doc.add_facet(self.province, Facet::from_path([petition.province_code.as_str()]));
        }
        doc.add_date(self.received_at, to_tantivy_date(petition.received_at));
        if let Some(language) = &petition.language {
            doc.add_text(self.language, language);
        }
        if let Some(topic) = &petition.topic {
            doc.add_text(self.topic, topic);
            doc.add_facet(self.topic_facet, Facet::from_path([topic.as_str()]));
        }
        doc
    }

    /// Reads the stored fields back.
    pub fn stored(&self, doc: &TantivyDocument) -> IndexResult<IndexedPetition> {
        let text = |field: Field, name: &'static str| -> IndexResult<String> {
            doc.get_first(field)
                .and_then(|value| value.as_str().map(str::to_owned))
                .ok_or(IndexError::CorruptDocument { reason: format!("missing stored field `{name}`") })
        };
        let raw_id = text(self.id, "id")?;
        let id = Uuid::parse_str(&raw_id)
            .map_err(|err| IndexError::CorruptDocument { reason: format!("stored id `{raw_id}` is no uuid: {err}") })?;
        let received_at = doc
            .get_first(self.received_at)
            .and_then(|value| value.as_datetime())
            .and_then(from_tantivy_date)
            .ok_or(IndexError::CorruptDocument { reason: format!("petition `{id}` has no valid `received_at`") })?;
        Ok(IndexedPetition {
            id,
            title: text(self.title, "title")?,
            body: text(self.body, "body")?,
            province_code: text(self.province_code, "province_code")?,
            commune_code: text(self.commune_code, "commune_code")?,
            received_at,
            language: doc.get_first(self.language).and_then(|value| value.as_str().map(str::to_owned)),
            topic: doc.get_first(self.topic).and_then(|value| value.as_str().map(str::to_owned)),
            state: doc.get_first(self.state).and_then(|value| value.as_str()).unwrap_or(DEFAULT_STATE).to_owned(),
        })
    }
}

impl Default for PetitionFields {
    fn default() -> Self {
        PetitionFields::new()
    }
}

/// What the index stores of a petition: enough to show it in results without the lake.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IndexedPetition {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub province_code: String,
    pub commune_code: String,
    pub received_at: DateTime<Utc>,
    pub language: Option<String>,
    pub topic: Option<String>,
    /// The handling state when the index last heard of it.
    pub state: String,
}

/// The state of a petition nobody has acted on.
pub const DEFAULT_STATE: &str = "received";

/// `at` as tantivy stores it (nanoseconds in an `i64`: 1677-09-21 to 2262-04-11), saturated at
/// those ends, so that a range bound beyond them (`from=9999-12-31`) still compares as far later
/// or earlier than every petition instead of wrapping around.
pub(crate) fn to_tantivy_date(at: DateTime<Utc>) -> tantivy::DateTime {
    let micros = at.timestamp_micros().clamp(i64::MIN / 1000, i64::MAX / 1000);
    tantivy::DateTime::from_timestamp_micros(micros)
}

fn from_tantivy_date(at: tantivy::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(at.into_timestamp_micros())
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn far_dates_saturate_instead_of_wrapping() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        let now = to_tantivy_date(day(2025, 9, 15));
        assert!(to_tantivy_date(day(9999, 12, 31)) > now);
        assert!(to_tantivy_date(day(2262, 4, 12)) > now);
        assert!(to_tantivy_date(day(1000, 1, 1)) < now);
        assert!(to_tantivy_date(day(1677, 9, 20)) < now);
    }
}
