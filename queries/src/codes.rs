//! Rows counted per combination of code columns (week, province, commune, topic, language,
//! channel) on Parquet's dictionary keys.
//!
//! The codes are dictionary-encoded in the lake's Parquet files: each column chunk stores its
//! few distinct values once and a small key per row. Read as dictionaries
//! ([`crate::live_files::LiveFiles::with_dictionary_strings`]), a batch arrives as those values
//! and keys, so a count per combination needs no string hashed or compared per row: the keys of
//! the grouped columns are combined into one small integer per row and counted in a dense
//! array (or, when the combinations of one batch are too many for that, in a hash map of the
//! packed ids), and strings are only looked at once per dictionary. DataFusion's hash
//! aggregate hashes and compares the strings (or views) of every row, which made this
//! aggregate 10-20% slower than DuckDB's, which also groups on dictionaries
//! (docs/BENCHMARKS.md).
//!
//! DataFusion plans and runs the scan (file choice by week, projection, any other filter);
//! [`count_codes`] consumes its output partitions in parallel.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::dataframe::DataFrame;
use futures::StreamExt;
use rustc_hash::FxHashMap;

use crate::QueryResult;

/// At most this many combinations of one batch's dictionaries are counted in a dense array.
const DENSE_LIMIT: usize = 1 << 16;

/// The distinct values of one column; id 0 is null.
#[derive(Default)]
struct Interner {
    ids: FxHashMap<String, u64>,
    values: Vec<Option<String>>,
}

impl Interner {
    fn id(&mut self, value: Option<&str>) -> u64 {
        let Some(value) = value else { return 0 };
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.values.push(Some(value.to_owned()));
        let id = self.values.len() as u64;
        self.ids.insert(value.to_owned(), id);
        id
    }

    fn value(&self, id: u64) -> Option<String> {
        if id == 0 { None } else { self.values[id as usize - 1].clone() }
    }
}

/// Counts of one output partition.
struct Counter {
    columns: usize,
    /// Bits of each column's id in a packed key (at most 32, so that shifts stay in range).
    bits: u32,
    interners: Vec<Interner>,
    counts: FxHashMap<u64, u64>,
    /// Scratch: each row's combination within its batch.
    combined: Vec<u32>,
    dense: Vec<u32>,
}

/// Why a batch cannot be counted here (the caller falls back to DataFusion's aggregate).
struct NotCodes;

impl Counter {
    fn new(columns: usize) -> Counter {
        let bits = (64 / columns.max(1) as u32).min(32);
        Counter {
            columns,
            bits,
            interners: (0..columns).map(|_| Interner::default()).collect(),
            counts: FxHashMap::default(),
            combined: Vec::new(),
            dense: Vec::new(),
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<(), NotCodes> {
        if batch.num_columns() != self.columns {
            return Err(NotCodes);
        }
        let rows = batch.num_rows();
        // Per column: its keys, which rows are null, and the packed id of each dictionary entry
        // (last: null).
        let mut columns = Vec::with_capacity(self.columns);
        let mut combinations = 1usize;
        for (index, column) in batch.columns().iter().enumerate() {
            let dictionary = column.as_dictionary_opt::<Int32Type>().ok_or(NotCodes)?;
            let values = dictionary.values().as_string_opt::<i32>().ok_or(NotCodes)?;
            let mut ids = Vec::with_capacity(values.len() + 1);
            for entry in 0..values.len() {
                let value = (!values.is_null(entry)).then(|| values.value(entry));
                let id = self.interners[index].id(value);
                if id >= 1 << self.bits {
                    return Err(NotCodes);
                }
                ids.push(id << (self.bits * index as u32));
            }
            ids.push(0);
            combinations = combinations.saturating_mul(ids.len());
            columns.push((dictionary, ids));
        }
        if combinations <= DENSE_LIMIT {
            // One small integer per row: the keys in mixed radix over this batch's dictionaries.
            self.combined.clear();
            self.combined.resize(rows, 0);
            let mut stride = 1u32;
            let mut strides = Vec::with_capacity(columns.len());
            for (dictionary, ids) in &columns {
                let null = (ids.len() - 1) as u32;
                let keys = dictionary.keys();
                let values = keys.values();
                match keys.nulls().filter(|nulls| nulls.null_count() > 0) {
                    None => {
                        for (combined, &key) in self.combined.iter_mut().zip(values.iter()) {
                            *combined += (key as u32).min(null) * stride;
                        }
                    }
                    Some(nulls) => {
                        for (row, (combined, &key)) in self.combined.iter_mut().zip(values.iter()).enumerate() {
                            let local = if nulls.is_valid(row) { (key as u32).min(null) } else { null };
                            *combined += local * stride;
                        }
                    }
                }
                strides.push(stride);
                stride *= ids.len() as u32;
            }
            self.dense.clear();
            self.dense.resize(combinations, 0);
            for &combined in &self.combined {
                self.dense[combined as usize] += 1;
            }
            for (combination, &n) in self.dense.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let mut key = 0;
                let mut rest = combination;
                for (_, ids) in &columns {
                    key |= ids[rest % ids.len()];
                    rest /= ids.len();
                }
                *self.counts.entry(key).or_default() += u64::from(n);
            }
        } else {
            for row in 0..rows {
                let mut key = 0;
                for (dictionary, ids) in &columns {
                    let keys = dictionary.keys();
                    let local =
                        if keys.is_valid(row) { (keys.value(row) as usize).min(ids.len() - 1) } else { ids.len() - 1 };
                    key |= ids[local];
                }
                *self.counts.entry(key).or_default() += 1;
            }
        }
        Ok(())
    }

    fn rows(&self) -> Vec<(Vec<Option<String>>, u64)> {
        let mask = (1u64 << self.bits) - 1;
        self.counts
            .iter()
            .map(|(&key, &n)| {
                let values = (0..self.columns)
                    .map(|index| self.interners[index].value((key >> (self.bits * index as u32)) & mask))
                    .collect();
                (values, n)
            })
            .collect()
    }
}

/// Rows of `frame` counted per combination of all its columns (each a string dictionary):
/// each combination's values (`None` for null) and count. `None` when a column is not a
/// string dictionary or has too many distinct values; the caller then aggregates otherwise.
pub async fn count_codes(frame: DataFrame) -> QueryResult<Option<Vec<(Vec<Option<String>>, u64)>>> {
    let columns = frame.schema().fields().len();
    if columns == 0 {
        return Ok(None);
    }
    let streams = frame.execute_stream_partitioned().await?;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut counter = Counter::new(columns);
                while let Some(batch) = stream.next().await {
                    if counter.add(&batch?).is_err() {
                        return Ok(None);
                    }
                }
                QueryResult::Ok(Some(counter.rows()))
            })
        })
        .collect();
    let mut all: FxHashMap<Vec<Option<String>>, u64> = FxHashMap::default();
    for task in tasks {
        let rows = task.await.map_err(|err| datafusion::error::DataFusionError::External(Box::new(err)))??;
        let Some(rows) = rows else { return Ok(None) };
        for (values, n) in rows {
            *all.entry(values).or_default() += n;
        }
    }
    Ok(Some(all.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{DictionaryArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;

    use super::*;

    fn dictionary(keys: Vec<Option<i32>>, values: Vec<Option<&str>>) -> Arc<dyn Array> {
        let keys = datafusion::arrow::array::Int32Array::from(keys);
        Arc::new(DictionaryArray::<Int32Type>::try_new(keys, Arc::new(StringArray::from(values))).unwrap())
    }

    fn batch(columns: Vec<Arc<dyn Array>>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| Field::new(format!("c{i}"), column.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    /// The counts of plain rows of values, for comparison.
    fn expected(rows: &[Vec<Option<&str>>]) -> Vec<(Vec<Option<String>>, u64)> {
        let mut counts: FxHashMap<Vec<Option<String>>, u64> = FxHashMap::default();
        for row in rows {
            *counts.entry(row.iter().map(|v| v.map(str::to_owned)).collect()).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        counts
    }

    #[tokio::test]
    async fn counts_agree_with_plain_rows_across_batches_with_different_dictionaries_and_nulls() {
        // Two batches whose dictionaries differ (order, members, a null value), with null keys.
        let first = batch(vec![
            dictionary(vec![Some(0), Some(1), Some(1), None, Some(2)], vec![Some("land"), Some("health"), None]),
            dictionary(vec![Some(0), Some(0), Some(1), Some(1), Some(0)], vec![Some("01"), Some("79")]),
        ]);
        let second = batch(vec![
            dictionary(vec![Some(1), Some(0), Some(2)], vec![Some("health"), Some("land"), Some("jobs")]),
            dictionary(vec![Some(0), None, Some(0)], vec![Some("79")]),
        ]);
        let rows = vec![
            vec![Some("land"), Some("01")],
            vec![Some("health"), Some("01")],
            vec![Some("health"), Some("79")],
            vec![None, Some("79")],
            vec![None, Some("01")],
            vec![Some("land"), Some("79")],
            vec![Some("health"), None],
            vec![Some("jobs"), Some("79")],
        ];
        let ctx = SessionContext::new();
        let frame = ctx.read_batches(vec![first, second]).unwrap();
        let mut counted = count_codes(frame).await.unwrap().expect("dictionaries");
        counted.sort();
        assert_eq!(counted, expected(&rows));
    }

    #[test]
    fn the_hash_path_agrees_with_the_dense_path() {
        // 300 x 300 combinations exceed the dense limit.
        let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        let values: Vec<Option<&str>> = values.iter().map(|v| Some(v.as_str())).collect();
        let keys =
            |offset: i32| (0..1_000).map(|i| if i % 97 == 0 { None } else { Some((i * 7 + offset) % 300) }).collect();
        let wide = batch(vec![dictionary(keys(0), values.clone()), dictionary(keys(5), values.clone())]);
        let mut counter = Counter::new(2);
        assert!(counter.add(&wide).is_ok());
        let mut counted = counter.rows();
        counted.sort();
        let rows: Vec<Vec<Option<&str>>> = (0..1_000)
            .map(|i| {
                let value = |offset: i32| if i % 97 == 0 { None } else { values[((i * 7 + offset) % 300) as usize] };
                vec![value(0), value(5)]
            })
            .collect();
        assert_eq!(counted, expected(&rows));
    }

    #[test]
    fn one_column_is_counted_too() {
        let one = batch(vec![dictionary(vec![Some(0), Some(1), None, Some(1)], vec![Some("01"), Some("79")])]);
        let mut counter = Counter::new(1);
        assert!(counter.add(&one).is_ok());
        let mut counted = counter.rows();
        counted.sort();
        assert_eq!(counted, expected(&[vec![Some("01")], vec![Some("79")], vec![None], vec![Some("79")]]));
    }

    #[tokio::test]
    async fn plain_strings_are_left_to_the_caller() {
        let plain = batch(vec![Arc::new(StringArray::from(vec!["a", "b"]))]);
        let frame = SessionContext::new().read_batches(vec![plain]).unwrap();
        assert!(count_codes(frame).await.unwrap().is_none());
    }
}
