//! DataFusion's functions whose output or work grows with their arguments, wrapped so that each
//! batch of arguments is measured before the function runs.
//!
//! A scalar function computes its whole output for a batch in one call that neither yields nor
//! asks the memory pool: `range(1, 1000000000)` builds an 8 GB list, `repeat(body, 100000)`
//! overflows Arrow's offsets and panics, `levenshtein` of two 100,000-character strings compares
//! for minutes. The time limit cannot stop such a call (aborting the query's task waits for it to
//! return), so the arguments are checked first: a batch whose output would exceed
//! [`MAX_RESULT_BYTES`], or whose work would exceed [`MAX_WORK`], is refused with an execution
//! error, the caller's fault. This covers counts from columns and subqueries as well as literals,
//! and constant folding, which calls the same functions while the query is planned.
//!
//! The wrappers replace the built-ins by name (and alias) in the query's session only. The table
//! functions `range` and `generate_series` are not wrapped: they produce their rows batch by batch,
//! within the row and time limits.
//!
//! The functions that copy their arguments into a longer value (`replace`, `regexp_replace`,
//! `concat`, `concat_ws`, `array_to_string`) are measured by what they add: the bytes of the
//! output beyond the largest argument, which already exists. `concat(title, ' ', body)` over a
//! batch of long bodies is a copy; `replace(text, 'a', long)` or a long separator between many
//! elements multiplies, and is refused past [`MAX_RESULT_BYTES`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::{Expr, SessionContext};

use super::MAX_RESULT_BYTES;

/// Most work one call of a function with quadratic cost may do for one batch: character pairs
/// compared by `levenshtein` (a billion is a few seconds of one core).
pub const MAX_WORK: u128 = 1_000_000_000;

/// How a function's output or work follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: `n` times the text's bytes.
    Repeat,
    /// `lpad` / `rpad(text, n [, fill])`: `n` characters of the fill, plus the text.
    Pad,
    /// `array_repeat(value, n)`: `n` copies of the value.
    ArrayRepeat,
    /// `array_resize(list, n [, value])`: `n` elements.
    ArrayResize,
    /// `range` / `generate_series([start,] end [, step])`: an element per step.
    Series,
    /// `levenshtein(a, b)`: the product of the lengths, in time.
    Levenshtein,
    /// `replace(text, from, to)`: `to` for each occurrence of `from` (or between every character
    /// when `from` is empty).
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: the replacement for each match, of
    /// which there are at most one per byte and one more (empty matches), as if the `g` flag
    /// applied; each `$1` / `\1` reference (two bytes or more) adds at most the text once.
    RegexpReplace,
    /// `concat(...)`: the arguments end to end.
    Concat,
    /// `concat_ws(separator, ...)`: the arguments with a separator between each.
    ConcatWs,
    /// `array_to_string(list, separator [, null])`: each element as text, with a separator (and
    /// the null text) for each.
    ArrayToString,
}

/// The functions wrapped, by name.
const GUARDED: [(&str, Growth); 13] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Series),
    ("generate_series", Growth::Series),
    ("levenshtein", Growth::Levenshtein),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("concat", Growth::Concat),
    ("concat_ws", Growth::ConcatWs),
    ("array_to_string", Growth::ArrayToString),
];

/// Replaces the built-ins of [`GUARDED`] in `ctx` by their guarded versions.
pub(super) fn register(ctx: &SessionContext) {
    for (name, growth) in GUARDED {
        // A function the build leaves out cannot be called either.
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded { inner, growth }));
        }
    }
}

/// A built-in function that runs only when [`Growth`] allows its arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    /// The built-in's simplification, measured first and guarded after: `concat` and `concat_ws`
    /// join their literal arguments into one string here, while the query is planned, and
    /// return a call of the unguarded built-in.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if matches!(self.growth, Growth::Concat | Growth::ConcatWs) {
            let literal = |arg: &Expr| match arg {
                Expr::Literal(value, _) => value.try_as_str().flatten().map_or(0, |text| text.len() as u128),
                _ => 0,
            };
            let lengths: Vec<u128> = args.iter().map(literal).collect();
            let separators = match self.growth {
                Growth::ConcatWs => lengths.first().copied().unwrap_or(0) * args.len() as u128,
                _ => 0,
            };
            let total = sum(lengths.iter().copied()).saturating_add(separators);
            refuse_beyond(
                self.name(),
                total.saturating_sub(lengths.iter().max().copied().unwrap_or(0)),
                MAX_RESULT_BYTES as u128,
                "bytes",
            )?;
        }
        Ok(match self.inner.simplify(args, info)? {
            ExprSimplifyResult::Simplified(Expr::ScalarFunction(mut call)) => {
                if let Some((_, growth)) = GUARDED.iter().find(|(name, _)| *name == call.func.name()) {
                    call.func = Arc::new(ScalarUDF::new_from_impl(Guarded { inner: call.func, growth: *growth }));
                }
                ExprSimplifyResult::Simplified(Expr::ScalarFunction(call))
            }
            other => other,
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        check(self.name(), self.growth, &args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }
}

/// Refuses a batch of arguments whose output or work is beyond the limits.
fn check(name: &str, growth: Growth, args: &[ColumnarValue], number_rows: usize) -> Result<()> {
    // All scalars: the function computes one value.
    let rows = if args.iter().all(|arg| matches!(arg, ColumnarValue::Scalar(_))) { 1 } else { number_rows };
    let count = |index: usize| -> Result<Vec<u128>> {
        let Some(arg) = args.get(index) else { return Ok(vec![0; rows]) };
        (0..rows).map(|row| Ok(number(&value_at(arg, row)?).map_or(0, |n| n.max(0) as u128))).collect()
    };
    let bytes = |index: usize| args.get(index).map_or_else(|| vec![0; rows], |arg| value_bytes(arg, rows));
    let (total, limit, what) = match growth {
        Growth::Repeat => {
            let (text, n) = (bytes(0), count(1)?);
            (sum((0..rows).map(|row| text[row] as u128 * n[row])), MAX_RESULT_BYTES as u128, "bytes")
        }
        Growth::Pad => {
            let (text, n) = (bytes(0), count(1)?);
            // A character of the fill is at most four bytes, and at most the fill's own length.
            let fill = if args.len() > 2 { bytes(2) } else { vec![1; rows] };
            let total = sum((0..rows).map(|row| text[row] as u128 + n[row] * fill[row].clamp(1, 4) as u128));
            (total, MAX_RESULT_BYTES as u128, "bytes")
        }
        Growth::ArrayRepeat => {
            let (value, n) = (bytes(0), count(1)?);
            (sum((0..rows).map(|row| value[row].max(1) as u128 * n[row])), MAX_RESULT_BYTES as u128, "bytes")
        }
        Growth::ArrayResize => {
            let n = count(1)?;
            let width = match args.get(2) {
                Some(value) => value_bytes(value, rows),
                None => vec![element_width(&args[0].data_type()); rows],
            };
            (sum((0..rows).map(|row| width[row].max(1) as u128 * n[row])), MAX_RESULT_BYTES as u128, "bytes")
        }
        Growth::Series => {
            let elements = (0..rows)
                .map(|row| {
                    let at = |index: usize| args.get(index).map(|arg| value_at(arg, row)).transpose();
                    let (start, end, step) = match args.len() {
                        1 => (Some(ScalarValue::Int64(Some(0))), at(0)?, None),
                        _ => (at(0)?, at(1)?, at(2)?),
                    };
                    Ok(series_length(start.as_ref(), end.as_ref(), step.as_ref()))
                })
                .collect::<Result<Vec<u128>>>()?;
            // Eight bytes an element: integers, dates and timestamps alike.
            (sum(elements.into_iter().map(|n| n * 8)), MAX_RESULT_BYTES as u128, "bytes")
        }
        Growth::Levenshtein => {
            let (a, b) = (bytes(0), bytes(1));
            (sum((0..rows).map(|row| a[row] as u128 * b[row] as u128)), MAX_WORK, "character comparisons")
        }
        Growth::Replace | Growth::RegexpReplace | Growth::Concat | Growth::ConcatWs | Growth::ArrayToString => {
            let output = added(growth, args, rows, &bytes)?;
            let largest = args.iter().map(held_bytes).max().unwrap_or(0);
            (output.saturating_sub(largest), MAX_RESULT_BYTES as u128, "bytes")
        }
    };
    refuse_beyond(name, total, limit, what)
}

/// The bytes the output of one batch of a copying function holds at most (see [`Growth`]).
fn added(growth: Growth, args: &[ColumnarValue], rows: usize, bytes: &dyn Fn(usize) -> Vec<usize>) -> Result<u128> {
    let per_row = |f: &dyn Fn(usize) -> u128| sum((0..rows).map(f));
    Ok(match growth {
        Growth::Replace => {
            let (text, from, to) = (bytes(0), bytes(1), bytes(2));
            per_row(&|row| {
                let (text, to) = (text[row] as u128, to[row] as u128);
                match from[row] as u128 {
                    // Between every character, and at both ends.
                    0 => text + (text + 1) * to,
                    // Each occurrence takes `from` out and puts `to` in.
                    from => text + text / from * to.saturating_sub(from),
                }
            })
        }
        Growth::RegexpReplace => {
            let (text, replacement) = (bytes(0), bytes(2));
            per_row(&|row| {
                let (text, replacement) = (text[row] as u128, replacement[row] as u128);
                text + (text + 1) * replacement + replacement / 2 * text
            })
        }
        Growth::Concat => {
            let all: Vec<Vec<usize>> = (0..args.len()).map(bytes).collect();
            per_row(&|row| sum(all.iter().map(|arg| arg[row] as u128)))
        }
        Growth::ConcatWs => {
            let all: Vec<Vec<usize>> = (0..args.len()).map(bytes).collect();
            let values = args.len().saturating_sub(1) as u128;
            per_row(&|row| sum(all.iter().skip(1).map(|arg| arg[row] as u128)) + all[0][row] as u128 * values)
        }
        Growth::ArrayToString => {
            let (lists, separator, null) = (list_text(&args[0], rows)?, bytes(1), bytes(2));
            per_row(&|row| {
                let (text, elements) = lists[row];
                text + elements * (separator[row] + null[row]) as u128
            })
        }
        _ => 0,
    })
}

/// An execution error, the caller's fault, where `total` is beyond `limit`.
fn refuse_beyond(name: &str, total: u128, limit: u128, what: &str) -> Result<()> {
    if total <= limit {
        return Ok(());
    }
    Err(DataFusionError::Execution(match what {
        "bytes" => format!(
            "`{name}` would make {} MiB for one batch of rows, more than the {} MiB a result may hold; \
             use smaller counts or fewer rows",
            total >> 20,
            MAX_RESULT_BYTES >> 20
        ),
        _ => format!(
            "`{name}` would need {total} {what} for one batch of rows, more than the {limit} a query may spend; \
             use shorter values or fewer rows"
        ),
    }))
}

fn sum(values: impl Iterator<Item = u128>) -> u128 {
    values.fold(0u128, u128::saturating_add)
}

/// The value of `arg` in `row`.
fn value_at(arg: &ColumnarValue, row: usize) -> Result<ScalarValue> {
    match arg {
        ColumnarValue::Scalar(value) => Ok(value.clone()),
        ColumnarValue::Array(array) => ScalarValue::try_from_array(array, row),
    }
}

/// An integer, date, timestamp or interval as a number (nanoseconds for time), `None` for a
/// null or another type. An interval counts as the shortest it can be (a month as 28 days); one
/// whose parts differ in sign has no such bound and counts as `None`.
fn number(value: &ScalarValue) -> Option<i128> {
    const DAY: i128 = 86_400_000_000_000;
    let uniform = |parts: &[i128]| parts.iter().all(|p| *p >= 0) || parts.iter().all(|p| *p <= 0);
    Some(match value {
        ScalarValue::Int8(Some(v)) => i128::from(*v),
        ScalarValue::Int16(Some(v)) => i128::from(*v),
        ScalarValue::Int32(Some(v)) => i128::from(*v),
        ScalarValue::Int64(Some(v)) => i128::from(*v),
        ScalarValue::UInt8(Some(v)) => i128::from(*v),
        ScalarValue::UInt16(Some(v)) => i128::from(*v),
        ScalarValue::UInt32(Some(v)) => i128::from(*v),
        ScalarValue::UInt64(Some(v)) => i128::from(*v),
        ScalarValue::Date32(Some(days)) => i128::from(*days) * DAY,
        ScalarValue::Date64(Some(ms)) => i128::from(*ms) * 1_000_000,
        ScalarValue::TimestampSecond(Some(v), _) => i128::from(*v) * 1_000_000_000,
        ScalarValue::TimestampMillisecond(Some(v), _) => i128::from(*v) * 1_000_000,
        ScalarValue::TimestampMicrosecond(Some(v), _) => i128::from(*v) * 1_000,
        ScalarValue::TimestampNanosecond(Some(v), _) => i128::from(*v),
        ScalarValue::IntervalYearMonth(Some(months)) => i128::from(*months) * 28 * DAY,
        ScalarValue::IntervalDayTime(Some(i)) => {
            let parts = [i128::from(i.days) * DAY, i128::from(i.milliseconds) * 1_000_000];
            uniform(&parts).then(|| parts.iter().sum())?
        }
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            let parts = [i128::from(i.months) * 28 * DAY, i128::from(i.days) * DAY, i128::from(i.nanoseconds)];
            uniform(&parts).then(|| parts.iter().sum())?
        }
        _ => return None,
    })
}

/// At least as many elements as `range` / `generate_series` make from `start` to `end` by `step`
/// (1 when left out); 0 where an argument is null or its size is not known.
fn series_length(start: Option<&ScalarValue>, end: Option<&ScalarValue>, step: Option<&ScalarValue>) -> u128 {
    let (Some(start), Some(end)) = (start.and_then(number), end.and_then(number)) else {
        return 0;
    };
    let step = match step {
        Some(step) => match number(step) {
            Some(step) if step != 0 => step,
            _ => return 0,
        },
        None => 1,
    };
    let span = end - start;
    if span != 0 && (span > 0) != (step > 0) {
        return 0;
    }
    span.unsigned_abs() / step.unsigned_abs() + 1
}

/// The bytes of each row's value in `arg`: a string's or binary's length, a fixed width, or the
/// value's size in memory.
fn value_bytes(arg: &ColumnarValue, rows: usize) -> Vec<usize> {
    let array: ArrayRef = match arg {
        ColumnarValue::Scalar(value) => {
            let bytes = match value.try_as_str() {
                Some(text) => text.map_or(0, str::len),
                None => value.data_type().primitive_width().unwrap_or_else(|| value.size()),
            };
            return vec![bytes; rows];
        }
        ColumnarValue::Array(array) => Arc::clone(array),
    };
    let lengths: Option<Vec<usize>> = match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().iter().map(|v| v.map_or(0, str::len)).collect()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().iter().map(|v| v.map_or(0, str::len)).collect()),
        DataType::Utf8View => Some(array.as_string_view().iter().map(|v| v.map_or(0, str::len)).collect()),
        DataType::Binary => Some(array.as_binary::<i32>().iter().map(|v| v.map_or(0, <[u8]>::len)).collect()),
        DataType::LargeBinary => Some(array.as_binary::<i64>().iter().map(|v| v.map_or(0, <[u8]>::len)).collect()),
        data_type => data_type.primitive_width().map(|width| vec![width; array.len()]),
    };
    let mut lengths = lengths.unwrap_or_else(|| {
        (0..array.len()).map(|row| ScalarValue::try_from_array(&array, row).map_or(0, |value| value.size())).collect()
    });
    lengths.resize(rows, 0);
    lengths
}

/// The bytes `arg` holds in memory: a scalar once however many rows it stands for.
fn held_bytes(arg: &ColumnarValue) -> u128 {
    (match arg {
        ColumnarValue::Scalar(value) => {
            value.try_as_str().map_or_else(|| value.size(), |text| text.map_or(0, str::len))
        }
        ColumnarValue::Array(array) => {
            array.to_data().get_slice_memory_size().unwrap_or_else(|_| array.get_array_memory_size())
        }
    }) as u128
}

/// For each row's list in `arg`: the bytes its elements make as text at most, and how many
/// elements there are, nested lists flattened as `array_to_string` does.
fn list_text(arg: &ColumnarValue, rows: usize) -> Result<Vec<(u128, u128)>> {
    let (array, scalar) = match arg {
        ColumnarValue::Scalar(value) => (value.to_array()?, true),
        ColumnarValue::Array(array) => (Arc::clone(array), false),
    };
    Ok((0..rows)
        .map(|row| {
            let row = if scalar { 0 } else { row };
            if row >= array.len() || array.is_null(row) {
                return (0, 0);
            }
            match list_value(&array, row) {
                Some(values) => elements_text(&values),
                None => elements_text(&array.slice(row, 1)),
            }
        })
        .collect())
}

/// The list in `row` of a list array, `None` for another type.
fn list_value(array: &ArrayRef, row: usize) -> Option<ArrayRef> {
    match array.data_type() {
        DataType::List(_) => Some(array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(..) => Some(array.as_fixed_size_list().value(row)),
        _ => None,
    }
}

/// The bytes `values` make as text at most and how many they are: strings as they are, numbers,
/// dates and the like at most 48 characters (three a byte for wider ones), nested lists flattened.
fn elements_text(values: &ArrayRef) -> (u128, u128) {
    let count = values.len() as u128;
    match values.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => (0..values.len())
            .filter(|row| values.is_valid(*row))
            .filter_map(|row| list_value(values, row))
            .map(|list| elements_text(&list))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (
            sum(value_bytes(&ColumnarValue::Array(Arc::clone(values)), values.len()).into_iter().map(|n| n as u128)),
            count,
        ),
        data_type => match data_type.primitive_width() {
            Some(width) => (count * width.saturating_mul(3).max(48) as u128, count),
            // Binary as hexadecimal, dictionaries and the rest by their size in memory.
            None => ((values.get_array_memory_size() as u128 * 2).max(count * 48), count),
        },
    }
}

/// The bytes of one element of a list type.
fn element_width(data_type: &DataType) -> usize {
    match data_type {
        DataType::List(field) | DataType::LargeList(field) | DataType::FixedSizeList(field, _) => {
            field.data_type().primitive_width().unwrap_or(8)
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_lengths_bound_what_range_makes() {
        let int = |v: i64| ScalarValue::Int64(Some(v));
        assert_eq!(series_length(Some(&int(1)), Some(&int(10)), None), 10);
        assert_eq!(series_length(Some(&int(10)), Some(&int(1)), Some(&int(-3))), 4);
        assert_eq!(series_length(Some(&int(10)), Some(&int(1)), None), 0);
        assert_eq!(series_length(Some(&int(1)), Some(&int(1_000_000_000)), None), 1_000_000_000);
        let day =
            ScalarValue::IntervalMonthDayNano(Some(datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 1, 0)));
        let (from, to) = (ScalarValue::Date32(Some(0)), ScalarValue::Date32(Some(365)));
        assert_eq!(series_length(Some(&from), Some(&to), Some(&day)), 366);
        let second = ScalarValue::TimestampSecond(Some(1), None);
        let nano =
            ScalarValue::IntervalMonthDayNano(Some(datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, 1)));
        assert_eq!(
            series_length(Some(&ScalarValue::TimestampSecond(Some(0), None)), Some(&second), Some(&nano)),
            1_000_000_001
        );
    }

    #[test]
    fn batches_beyond_the_limits_are_refused_before_computing() {
        let text = ColumnarValue::Scalar(ScalarValue::Utf8(Some("ab".into())));
        let n = |v: i64| ColumnarValue::Scalar(ScalarValue::Int64(Some(v)));
        assert!(check("repeat", Growth::Repeat, &[text.clone(), n(1000)], 1).is_ok());
        let err = check("repeat", Growth::Repeat, &[text.clone(), n(40_000_000)], 1).unwrap_err();
        assert!(err.to_string().contains("64 MiB"), "{err}");
        // A column of texts: the batch's rows add up.
        let column = ColumnarValue::Array(Arc::new(datafusion::arrow::array::StringArray::from(vec!["abcd"; 8192])));
        assert!(check("repeat", Growth::Repeat, &[column.clone(), n(100)], 8192).is_ok());
        assert!(check("repeat", Growth::Repeat, &[column.clone(), n(100_000)], 8192).is_err());
        assert!(check("lpad", Growth::Pad, &[text.clone(), n(70_000_000)], 1).is_err());
        assert!(check("range", Growth::Series, &[n(1), n(1_000_000_000)], 1).is_err());
        assert!(check("range", Growth::Series, &[n(1_000_000_000)], 1).is_err());
        assert!(check("range", Growth::Series, &[n(1), n(1000)], 1).is_ok());
        assert!(check("array_repeat", Growth::ArrayRepeat, &[n(1), n(1_000_000)], 1).is_ok());
        assert!(check("array_repeat", Growth::ArrayRepeat, &[n(1), n(100_000_000)], 1).is_err());
        let long = ColumnarValue::Scalar(ScalarValue::Utf8(Some("a".repeat(100_000))));
        assert!(check("levenshtein", Growth::Levenshtein, &[long.clone(), long], 1).is_err());
        assert!(check("levenshtein", Growth::Levenshtein, &[column.clone(), column], 8192).is_ok());
    }

    #[test]
    fn copying_functions_are_measured_by_what_they_add() {
        let text = |value: &str| ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.into())));
        let (a_million, b_60m) = (text(&"a".repeat(1_000_000)), text(&"b".repeat(60_000_000)));
        let (a_60m, b_100) = (text(&"a".repeat(60_000_000)), text(&"b".repeat(100)));
        assert!(check("replace", Growth::Replace, &[a_million.clone(), text("a"), b_60m.clone()], 1).is_err());
        assert!(check("replace", Growth::Replace, &[a_60m.clone(), text("a"), b_100.clone()], 1).is_err());
        assert!(check("replace", Growth::Replace, &[a_60m.clone(), text(""), text("bc")], 1).is_err());
        let (b_59, b_10k) = (text(&"b".repeat(59)), text(&"b".repeat(10_000)));
        let regexp = |args: &[ColumnarValue], rows| check("regexp_replace", Growth::RegexpReplace, args, rows);
        assert!(regexp(&[a_60m.clone(), text("a"), b_59, text("g")], 1).is_err());
        assert!(regexp(&[a_million.clone(), text("a"), b_10k, text("g")], 1).is_err());
        // A `$1` may repeat the whole text.
        assert!(regexp(&[a_60m.clone(), text("(a*)"), text("$1$1"), text("g")], 1).is_err());
        // A batch of long bodies, spaces squeezed: a copy, not growth.
        let bodies =
            ColumnarValue::Array(Arc::new(datafusion::arrow::array::StringArray::from(vec![
                "a b ".repeat(5_000);
                8192
            ])));
        // (Up to 64 MiB of bodies a batch: empty matches would put a space between every byte.)
        let some_bodies =
            ColumnarValue::Array(Arc::new(datafusion::arrow::array::StringArray::from(vec![
                "a b ".repeat(5_000);
                2_000
            ])));
        assert!(regexp(&[some_bodies, text("\\s+"), text(" "), text("g")], 2_000).is_ok());
        assert!(check("replace", Growth::Replace, &[bodies.clone(), text("a"), text("b")], 8192).is_ok());
        assert!(check("replace", Growth::Replace, &[bodies.clone(), text("a"), text("bbb")], 8192).is_err());
        let forty = vec![b_60m.clone(); 40];
        assert!(check("concat", Growth::Concat, &forty, 1).is_err());
        assert!(check("concat", Growth::Concat, &[b_60m.clone(), text("x")], 1).is_ok());
        assert!(check("concat", Growth::Concat, &[bodies.clone(), text(" "), bodies.clone()], 8192).is_err());
        assert!(check("concat", Growth::Concat, &[text("#"), text(" "), bodies.clone()], 8192).is_ok());
        // A scalar stands for every row of the batch.
        assert!(check("concat", Growth::Concat, &[bodies.clone(), text(&"x".repeat(10_000))], 8192).is_err());
        let mut separated = vec![b_60m.clone()];
        separated.extend(vec![text("x"); 40]);
        assert!(check("concat_ws", Growth::ConcatWs, &separated, 1).is_err());
        assert!(check("concat_ws", Growth::ConcatWs, &[text(", "), bodies.clone(), text("x")], 8192).is_ok());
        let list = |values: Vec<String>| {
            let array = datafusion::arrow::array::StringArray::from(values);
            ColumnarValue::Scalar(ScalarValue::List(Arc::new(
                datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(array)).build_list_array(),
            )))
        };
        let sixty = list(vec!["x".repeat(1_000_000); 60]);
        assert!(check("array_to_string", Growth::ArrayToString, &[sixty.clone(), b_60m], 1).is_err());
        assert!(check("array_to_string", Growth::ArrayToString, &[sixty, text(",")], 1).is_ok());
        let numbers = ColumnarValue::Scalar(ScalarValue::List(ScalarValue::new_list_nullable(
            &(0..1000).map(|n| ScalarValue::Int64(Some(n))).collect::<Vec<_>>(),
            &DataType::Int64,
        )));
        assert!(check("array_to_string", Growth::ArrayToString, &[numbers.clone(), text(",")], 1).is_ok());
        assert!(check("array_to_string", Growth::ArrayToString, &[numbers, text(&"y".repeat(100_000))], 1).is_err());
    }
}
