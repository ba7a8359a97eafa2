//! Supervised topic classification of petition text.
//!
//! In: labelled examples `(text, label)` to train on; texts to classify.
//! Out: a [`TopicClassifier`] (saved and loaded as one file), ranked `(label, confidence)` pairs,
//! and an [`Evaluation`] (accuracy, macro-F1, per-label scores) against held-out examples.
//! Guarantees: CPU only, deterministic for a given seed, and no allocation per syllable when
//! classifying; any text (empty, numbers only, any script) classifies without panicking.
//!
//! The model is linear over hashed syllable uni- and bigrams of the folded, lower-cased text
//! ([`voxpop_schema::text::fold`]): folding makes "dat dai" and "đất đai" the same feature, so
//! text typed without a Vietnamese keyboard is classified like the rest. Hashing (FNV-1a, fixed
//! here so a saved model means the same on every build) keeps the model a fixed-size table with
//! no vocabulary to store or look up.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Number of hash bits by default: 2^18 features, few collisions for a petition vocabulary.
pub const DEFAULT_BITS: u32 = 18;

const MODEL_MAGIC: &[u8; 8] = b"VXTOPIC1";

/// How the weights are learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Multinomial naive Bayes: one pass over the data, the quickest to train.
    NaiveBayes,
    /// Multinomial logistic regression by averaged SGD on length-normalised counts; calibrated
    /// confidences.
    Logistic,
}

/// Training settings; [`Default`] gives the settings measured in `docs/BENCHMARKS.md`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub algorithm: Algorithm,
    /// log2 of the number of hashed features.
    pub bits: u32,
    /// Passes over the data ([`Algorithm::Logistic`] only).
    pub epochs: usize,
    /// SGD step size ([`Algorithm::Logistic`] only).
    pub learning_rate: f32,
    /// Additive smoothing ([`Algorithm::NaiveBayes`] only).
    pub alpha: f32,
    /// Seeds the order of examples in SGD.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            algorithm: Algorithm::Logistic,
            bits: DEFAULT_BITS,
            epochs: 15,
            learning_rate: 0.5,
            alpha: 0.1,
            seed: 2025,
        }
    }
}

/// A trained linear topic model.
#[derive(Debug, Clone)]
pub struct TopicClassifier {
    header: ModelHeader,
    /// Feature-major: the weights of feature `f` are `weights[f * labels .. (f + 1) * labels]`,
    /// so one feature costs one cache line, whatever the number of labels.
    weights: Vec<f32>,
}

/// Everything but the weight table; stored as JSON at the head of a model file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelHeader {
    labels: Vec<String>,
    bits: u32,
    algorithm: Algorithm,
    bias: Vec<f32>,
    /// Added once per n-gram of the text. Naive Bayes keeps the log-probability of an unseen
    /// feature here, so that the table is zero for every feature training never saw.
    length_weight: Vec<f32>,
    /// Scale the summed weights by 1/sqrt(n-grams): logistic regression sees unit-ish vectors.
    normalise_length: bool,
}

impl TopicClassifier {
    /// Trains on `(text, label)` pairs. Labels are sorted; an empty `examples` gives a model that
    /// classifies nothing.
    pub fn train(examples: &[(String, String)], options: &TrainOptions) -> TopicClassifier {
        TopicClassifier::train_with_progress(examples, options, &mut |_, _| {})
    }

    /// [`TopicClassifier::train`], reporting `(done, total)` units of work as it goes.
    pub fn train_with_progress(
        examples: &[(String, String)],
        options: &TrainOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> TopicClassifier {
        let bits = options.bits.clamp(8, 26);
        let mut labels: Vec<String> = examples.iter().map(|(_, label)| label.clone()).collect();
        labels.sort();
        labels.dedup();
        let encoded: Vec<(Vec<(u32, f32)>, usize)> = examples
            .iter()
            .map(|(text, label)| {
                (feature_counts(text, bits), labels.binary_search(label).expect("label collected above"))
            })
            .collect();
        match options.algorithm {
            Algorithm::NaiveBayes => train_naive_bayes(labels, bits, &encoded, options.alpha, progress),
            Algorithm::Logistic => train_logistic(labels, bits, &encoded, options, progress),
        }
    }

    /// The labels the model knows, sorted.
    pub fn labels(&self) -> &[String] {
        &self.header.labels
    }

    pub fn algorithm(&self) -> Algorithm {
        self.header.algorithm
    }

    /// Every label with its confidence (softmax of the scores, summing to 1), most likely first.
    pub fn classify(&self, text: &str) -> Vec<(String, f32)> {
        let mut scores = self.scores(text);
        softmax(&mut scores);
        let mut ranked: Vec<(String, f32)> = self.header.labels.iter().cloned().zip(scores).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked
    }

    /// The most likely label, without ranking or allocating labels; `None` for a model with no
    /// labels.
    pub fn predict(&self, text: &str) -> Option<&str> {
        let scores = self.scores(text);
        let best = argmax(&scores)?;
        Some(self.header.labels[best].as_str())
    }

    /// Raw linear scores, one per label in [`TopicClassifier::labels`] order.
    fn scores(&self, text: &str) -> Vec<f32> {
        let header = &self.header;
        let width = header.labels.len();
        let mut sums = vec![0f32; width];
        if width == 0 {
            return sums;
        }
        let mut count = 0usize;
        for_each_feature(text, header.bits, true, |feature| {
            count += 1;
            let row = &self.weights[feature as usize * width..][..width];
            for (sum, weight) in sums.iter_mut().zip(row) {
                *sum += weight;
            }
        });
        let scale = if header.normalise_length && count > 0 { 1.0 / (count as f32).sqrt() } else { 1.0 };
        for (index, sum) in sums.iter_mut().enumerate() {
            *sum = header.bias[index] + header.length_weight[index] * count as f32 + *sum * scale;
        }
        sums
    }

    /// Classifies every example and compares with its label.
    pub fn evaluate(&self, examples: &[(String, String)]) -> Evaluation {
        Evaluation::from_predictions(
            examples.iter().map(|(text, label)| (label.as_str(), self.predict(text).unwrap_or(""))),
        )
    }

    /// Writes the model: a magic number, a JSON header, then the non-zero rows of the table.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        let header = serde_json::to_vec(&self.header)?;
        out.write_all(MODEL_MAGIC)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        let width = self.header.labels.len().max(1);
        let rows: Vec<(usize, &[f32])> =
            self.weights.chunks(width).enumerate().filter(|(_, row)| row.iter().any(|w| *w != 0.0)).collect();
        out.write_all(&(rows.len() as u32).to_le_bytes())?;
        for (feature, row) in rows {
            out.write_all(&(feature as u32).to_le_bytes())?;
            for weight in row {
                out.write_all(&weight.to_le_bytes())?;
            }
        }
        out.flush()
    }

    /// Reads a model written by [`TopicClassifier::save`].
    pub fn load(path: &Path) -> io::Result<TopicClassifier> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
        TopicClassifier::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> io::Result<TopicClassifier> {
        let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("not a topic model: {why}"));
        let mut rest = bytes.strip_prefix(MODEL_MAGIC.as_slice()).ok_or_else(|| invalid("bad magic number"))?;
        let mut take = |len: usize| -> io::Result<&[u8]> {
            if rest.len() < len {
                return Err(invalid("truncated"));
            }
            let (head, tail) = rest.split_at(len);
            rest = tail;
            Ok(head)
        };
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let header_len = u32_at(take(4)?) as usize;
        let header: ModelHeader = serde_json::from_slice(take(header_len)?)?;
        let width = header.labels.len();
        if !(8..=26).contains(&header.bits) || header.bias.len() != width || header.length_weight.len() != width {
            return Err(invalid("inconsistent header"));
        }
        let mut weights = vec![0f32; (1usize << header.bits) * width];
        let rows = u32_at(take(4)?) as usize;
        for _ in 0..rows {
            let feature = u32_at(take(4)?) as usize;
            if feature >= 1 << header.bits {
                return Err(invalid("feature out of range"));
            }
            for slot in &mut weights[feature * width..][..width] {
                *slot = f32::from_le_bytes(take(4)?.try_into().expect("4 bytes"));
            }
        }
        if !rest.is_empty() {
            return Err(invalid("trailing bytes"));
        }
        Ok(TopicClassifier { header, weights })
    }
}

fn train_naive_bayes(
    labels: Vec<String>,
    bits: u32,
    encoded: &[(Vec<(u32, f32)>, usize)],
    alpha: f32,
    progress: &mut dyn FnMut(usize, usize),
) -> TopicClassifier {
    let width = labels.len();
    let mut weights = vec![0f32; (1usize << bits) * width];
    let mut totals = vec![0f64; width];
    let mut documents = vec![0usize; width];
    for (done, (features, label)) in encoded.iter().enumerate() {
        documents[*label] += 1;
        for &(feature, count) in features {
            weights[feature as usize * width + label] += count;
            totals[*label] += count as f64;
        }
        progress(done + 1, encoded.len());
    }
    let vocabulary = weights.chunks(width.max(1)).filter(|row| row.iter().any(|w| *w != 0.0)).count().max(1) as f64;
    let alpha = alpha.max(1e-6);
    // log P(f | c) = log((n_fc + a) / (N_c + a V)) splits into log(1 + n_fc / a), zero for unseen
    // features, and log(a / (N_c + a V)), the same for every n-gram of a text.
    for weight in &mut weights {
        if *weight != 0.0 {
            *weight = (1.0 + *weight / alpha).ln();
        }
    }
    let length_weight =
        totals.iter().map(|total| (alpha as f64 / (total + alpha as f64 * vocabulary)).ln() as f32).collect();
    let bias = documents.iter().map(|count| ((*count as f64 / encoded.len() as f64).ln()) as f32).collect();
    let header =
        ModelHeader { labels, bits, algorithm: Algorithm::NaiveBayes, bias, length_weight, normalise_length: false };
    TopicClassifier { header, weights }
}

fn train_logistic(
    labels: Vec<String>,
    bits: u32,
    encoded: &[(Vec<(u32, f32)>, usize)],
    options: &TrainOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> TopicClassifier {
    let width = labels.len();
    // Averaged SGD: `weights` are the current weights, `sums` accumulate step-weighted updates so
    // that the average over all steps is `weights - sums / steps`; averaging steadies a model
    // trained on few examples.
    let mut weights = vec![0f32; (1usize << bits) * width];
    let mut sums = vec![0f32; weights.len()];
    let mut bias = vec![0f32; width];
    let mut bias_sums = vec![0f32; width];
    // Length-normalised inputs: the same scaling as `scores` applies when classifying.
    let inputs: Vec<(Vec<(u32, f32)>, usize)> = encoded
        .iter()
        .map(|(features, label)| {
            let total: f32 = features.iter().map(|(_, count)| count).sum();
            let scale = if total > 0.0 { 1.0 / total.sqrt() } else { 0.0 };
            (features.iter().map(|&(feature, count)| (feature, count * scale)).collect(), *label)
        })
        .collect();
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    let mut rng = SplitMix64(options.seed);
    let total_steps = options.epochs * inputs.len();
    let mut step = 1f32;
    let mut scores = vec![0f32; width];
    for epoch in 0..options.epochs {
        shuffle(&mut order, &mut rng);
        // Decaying step size: large steps find the region, small ones settle in it.
        let rate = options.learning_rate / (1.0 + epoch as f32 * 0.5);
        for &index in &order {
            let (features, label) = &inputs[index];
            scores.copy_from_slice(&bias);
            for &(feature, value) in features {
                let row = &weights[feature as usize * width..][..width];
                for (score, weight) in scores.iter_mut().zip(row) {
                    *score += weight * value;
                }
            }
            softmax(&mut scores);
            scores[*label] -= 1.0;
            for &(feature, value) in features {
                let base = feature as usize * width;
                for (class, gradient) in scores.iter().enumerate() {
                    let delta = rate * gradient * value;
                    weights[base + class] -= delta;
                    sums[base + class] -= step * delta;
                }
            }
            for (class, gradient) in scores.iter().enumerate() {
                bias[class] -= rate * gradient;
                bias_sums[class] -= step * rate * gradient;
            }
            step += 1.0;
        }
        progress((epoch + 1) * inputs.len(), total_steps);
    }
    for (weight, sum) in weights.iter_mut().zip(&sums) {
        *weight -= sum / step;
    }
    for (weight, sum) in bias.iter_mut().zip(&bias_sums) {
        *weight -= sum / step;
    }
    let header = ModelHeader {
        labels,
        bits,
        algorithm: Algorithm::Logistic,
        bias,
        length_weight: vec![0.0; width],
        normalise_length: true,
    };
    TopicClassifier { header, weights }
}

/// Accuracy and per-label precision, recall and F1 of predictions against gold labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub examples: usize,
    pub accuracy: f64,
    /// Unweighted mean of the per-label F1: every topic counts the same, however rare.
    pub macro_f1: f64,
    /// Every label seen in the gold labels or the predictions, sorted.
    pub per_label: Vec<LabelScores>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold examples with this label.
    pub support: usize,
}

impl Evaluation {
    /// Scores `(gold, predicted)` pairs.
    pub fn from_predictions<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Evaluation {
        use std::collections::BTreeMap;
        // label -> (true positives, predicted, gold)
        let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
        let (mut examples, mut correct) = (0usize, 0usize);
        for (gold, predicted) in pairs {
            examples += 1;
            counts.entry(gold).or_default().2 += 1;
            if !predicted.is_empty() {
                counts.entry(predicted).or_default().1 += 1;
            }
            if gold == predicted {
                correct += 1;
                counts.entry(gold).or_default().0 += 1;
            }
        }
        let ratio = |num: usize, den: usize| if den == 0 { 0.0 } else { num as f64 / den as f64 };
        let per_label: Vec<LabelScores> = counts
            .into_iter()
            .map(|(label, (hits, predicted, gold))| {
                let (precision, recall) = (ratio(hits, predicted), ratio(hits, gold));
                let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
                LabelScores { label: label.to_owned(), precision, recall, f1, support: gold }
            })
            .collect();
        let macro_f1 = if per_label.is_empty() {
            0.0
        } else {
            per_label.iter().map(|scores| scores.f1).sum::<f64>() / per_label.len() as f64
        };
        Evaluation { examples, accuracy: ratio(correct, examples), macro_f1, per_label }
    }
}

/// The baseline a classifier must beat: each label's most telling words, counted.
///
/// For every label it keeps the `keywords` syllables whose document frequency in the label most
/// exceeds their frequency elsewhere, and predicts the label whose keywords occur most often in
/// a text; a text with none of them gets the most frequent label (the majority-class baseline).
#[derive(Debug, Clone)]
pub struct KeywordBaseline {
    labels: Vec<String>,
    majority: usize,
    /// (hashed syllable, label), sorted for binary search.
    keywords: Vec<(u32, usize)>,
}

impl KeywordBaseline {
    pub fn train(examples: &[(String, String)], keywords: usize) -> KeywordBaseline {
        use std::collections::HashMap;
        let mut labels: Vec<String> = examples.iter().map(|(_, label)| label.clone()).collect();
        labels.sort();
        labels.dedup();
        let width = labels.len();
        let mut documents = vec![0usize; width];
        // syllable -> documents containing it, per label
        let mut frequency: HashMap<u32, Vec<u32>> = HashMap::new();
        for (text, label) in examples {
            let label = labels.binary_search(label).expect("label collected above");
            documents[label] += 1;
            let mut seen = Vec::new();
            for_each_feature(text, DEFAULT_BITS, false, |feature| seen.push(feature));
            seen.sort_unstable();
            seen.dedup();
            for feature in seen {
                frequency.entry(feature).or_insert_with(|| vec![0; width])[label] += 1;
            }
        }
        let majority = (0..width).max_by_key(|&label| (documents[label], std::cmp::Reverse(label))).unwrap_or(0);
        let mut chosen = Vec::new();
        for label in 0..width {
            let inside = documents[label].max(1) as f64;
            let outside = (examples.len() - documents[label]).max(1) as f64;
            let mut ranked: Vec<(f64, u32)> = frequency
                .iter()
                .map(|(feature, counts)| {
                    let elsewhere: u32 = counts.iter().sum::<u32>() - counts[label];
                    (counts[label] as f64 / inside - elsewhere as f64 / outside, *feature)
                })
                .filter(|(score, _)| *score > 0.0)
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            chosen.extend(ranked.into_iter().take(keywords).map(|(_, feature)| (feature, label)));
        }
        chosen.sort_unstable();
        KeywordBaseline { labels, majority, keywords: chosen }
    }

    pub fn predict(&self, text: &str) -> Option<&str> {
        if self.labels.is_empty() {
            return None;
        }
        let mut hits = vec![0f32; self.labels.len()];
        for_each_feature(text, DEFAULT_BITS, false, |feature| {
            let start = self.keywords.partition_point(|(keyword, _)| *keyword < feature);
            for (_, label) in self.keywords[start..].iter().take_while(|(keyword, _)| *keyword == feature) {
                hits[*label] += 1.0;
            }
        });
        let best = if hits.iter().all(|hit| *hit == 0.0) { self.majority } else { argmax(&hits)? };
        Some(self.labels[best].as_str())
    }

    pub fn evaluate(&self, examples: &[(String, String)]) -> Evaluation {
        Evaluation::from_predictions(
            examples.iter().map(|(text, label)| (label.as_str(), self.predict(text).unwrap_or(""))),
        )
    }

    /// The label predicted for texts without keywords.
    pub fn majority_label(&self) -> Option<&str> {
        self.labels.get(self.majority).map(String::as_str)
    }
}

/// Shuffles `examples` with `seed` and splits off the last `test_fraction` of them as the test
/// set: the same seed always gives the same split.
pub fn split<T: Clone>(examples: &[T], test_fraction: f64, seed: u64) -> (Vec<T>, Vec<T>) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    shuffle(&mut order, &mut SplitMix64(seed));
    let test = ((examples.len() as f64) * test_fraction.clamp(0.0, 1.0)).round() as usize;
    let (train, held_out) = order.split_at(examples.len() - test);
    (train.iter().map(|&i| examples[i].clone()).collect(), held_out.iter().map(|&i| examples[i].clone()).collect())
}

/// Times `classify`-equivalent work over `texts`, sequentially on the calling thread, repeating
/// until `at_least` has passed; returns texts per second.
pub fn measure_throughput(classifier: &TopicClassifier, texts: &[String], at_least: std::time::Duration) -> f64 {
    if texts.is_empty() {
        return 0.0;
    }
    let started = Instant::now();
    let mut classified = 0usize;
    while classified == 0 || started.elapsed() < at_least {
        for text in texts {
            std::hint::black_box(classifier.predict(std::hint::black_box(text)));
        }
        classified += texts.len();
    }
    classified as f64 / started.elapsed().as_secs_f64()
}

/// Hashed features of `text`, with their counts.
fn feature_counts(text: &str, bits: u32) -> Vec<(u32, f32)> {
    let mut features = Vec::new();
    for_each_feature(text, bits, true, |feature| features.push(feature));
    features.sort_unstable();
    let mut counts: Vec<(u32, f32)> = Vec::with_capacity(features.len());
    for feature in features {
        match counts.last_mut() {
            Some((last, count)) if *last == feature => *count += 1.0,
            _ => counts.push((feature, 1.0)),
        }
    }
    counts
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Code points below this are folded through a table (Latin, Latin Extended Additional: all of
/// Vietnamese); the rest through [`voxpop_schema::text::push_folded`].
const TABLE_SIZE: usize = 0x2000;
const SEPARATOR: u32 = 0;
/// A combining mark: part of the syllable, gone after folding.
const MARK: u32 = 1;
/// Folds to several characters: take the slow path.
const SLOW: u32 = 2;

/// For each code point below [`TABLE_SIZE`]: its folded, lower-cased character, or one of
/// [`SEPARATOR`], [`MARK`], [`SLOW`]. Built from `fold` itself, so the two cannot disagree.
fn fold_table() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..TABLE_SIZE as u32)
            .map(|code| match char::from_u32(code) {
                Some(ch) => classify_char(ch),
                None => SEPARATOR,
            })
            .collect()
    })
}

fn classify_char(ch: char) -> u32 {
    let mut folded = String::new();
    voxpop_schema::text::push_folded(ch, &mut folded);
    if folded.is_empty() {
        return MARK;
    }
    if !ch.is_alphanumeric() {
        return SEPARATOR;
    }
    let mut lower = folded.chars().flat_map(char::to_lowercase);
    match (lower.next(), lower.next()) {
        (Some(single), None) if (single as u32) > SLOW => single as u32,
        _ => SLOW,
    }
}

#[inline]
fn fnv_char(mut hash: u64, ch: char) -> u64 {
    let mut buffer = [0u8; 4];
    for byte in ch.encode_utf8(&mut buffer).bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Calls `emit` with the hashed index of every syllable (and, with `bigrams`, every pair of
/// adjacent syllables) of the folded, lower-cased `text`. Syllables are runs of letters and
/// digits; combining marks inside a run are dropped as `fold` drops them.
fn for_each_feature(text: &str, bits: u32, bigrams: bool, mut emit: impl FnMut(u32)) {
    let table = fold_table();
    let shift = 64 - bits;
    // Fibonacci hashing: the top bits of the product mix every bit of the FNV hash.
    let index = |hash: u64| (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as u32;
    let mut previous: Option<u64> = None;
    let mut current: Option<u64> = None;
    let mut end_syllable = |current: &mut Option<u64>, previous: &mut Option<u64>| {
        if let Some(hash) = current.take() {
            emit(index(hash));
            if bigrams && let Some(before) = *previous {
                emit(index(before.rotate_left(29) ^ hash ^ 0x5bd1_e995_0000_0001));
            }
            *previous = Some(hash);
        }
    };
    for ch in text.chars() {
        let code = ch as usize;
        let class = if code < TABLE_SIZE { table[code] } else { SLOW };
        match class {
            SEPARATOR => end_syllable(&mut current, &mut previous),
            MARK => {}
            SLOW => {
                if !ch.is_alphanumeric() {
                    let mut folded = String::new();
                    voxpop_schema::text::push_folded(ch, &mut folded);
                    if !folded.is_empty() {
                        end_syllable(&mut current, &mut previous);
                    }
                    continue;
                }
                let mut folded = String::new();
                voxpop_schema::text::push_folded(ch, &mut folded);
                let mut hash = current.unwrap_or(FNV_OFFSET);
                for lower in folded.chars().flat_map(char::to_lowercase) {
                    hash = fnv_char(hash, lower);
                }
                current = Some(hash);
            }
            folded => {
                let folded = char::from_u32(folded).expect("table holds characters");
                current = Some(fnv_char(current.unwrap_or(FNV_OFFSET), folded));
            }
        }
    }
    end_syllable(&mut current, &mut previous);
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        let uniform = 1.0 / scores.len().max(1) as f32;
        scores.iter_mut().for_each(|score| *score = uniform);
        return;
    }
    let mut total = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        total += *score;
    }
    for score in scores.iter_mut() {
        *score /= total;
    }
}

/// Index of the largest score, the first on ties; `None` when empty.
fn argmax(scores: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (index, score) in scores.iter().enumerate() {
        if best.is_none_or(|b| *score > scores[b]) {
            best = Some(index);
        }
    }
    best
}

/// A small, fixed pseudo-random generator: splits and SGD order must not change with a
/// dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn shuffle<T>(items: &mut [T], rng: &mut SplitMix64) {
    for i in (1..items.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(String, String)> {
        std::fs::read_to_string(voxpop_schema::source_file("connectors/data/vntc_train_sample.jsonl"))
            .unwrap()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                (value["text"].as_str().unwrap().to_owned(), value["topic"].as_str().unwrap().to_owned())
            })
            .collect()
    }

    fn syllable_hashes(text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for_each_feature(text, DEFAULT_BITS, false, |feature| out.push(feature));
        out
    }

    #[test]
    fn features_ignore_diacritics_case_and_punctuation() {
        assert_eq!(syllable_hashes("Đất đai, GIẢI phóng"), syllable_hashes("dat dai giai   phong"));
        // Decomposed input (NFD) folds like composed input.
        assert_eq!(syllable_hashes("Đất đai"), syllable_hashes("\u{110}a\u{302}\u{301}t \u{111}ai"));
        assert_ne!(syllable_hashes("dat dai"), syllable_hashes("datdai"));
        assert!(syllable_hashes(" ,.;!? ").is_empty());
        let mut both = Vec::new();
        for_each_feature("a b c", DEFAULT_BITS, true, |feature| both.push(feature));
        assert_eq!(both.len(), 5);
    }

    #[test]
    fn beats_the_baseline_on_held_out_news() {
        let (train, test) = split(&sample(), 0.2, 42);
        assert_eq!((train.len(), test.len()), (800, 200));
        let classifier = TopicClassifier::train(&train, &TrainOptions::default());
        let model = classifier.evaluate(&test);
        let baseline = KeywordBaseline::train(&train, 20).evaluate(&test);
        assert_eq!(model.examples, 200);
        assert!(model.macro_f1 > 0.75, "model macro-F1 {}", model.macro_f1);
        assert!(model.macro_f1 > baseline.macro_f1 + 0.1, "{} vs baseline {}", model.macro_f1, baseline.macro_f1);
        let bayes =
            TopicClassifier::train(&train, &TrainOptions { algorithm: Algorithm::NaiveBayes, ..Default::default() })
                .evaluate(&test);
        assert!(bayes.macro_f1 > 0.75, "naive Bayes macro-F1 {}", bayes.macro_f1);
    }

    #[test]
    fn save_and_load_give_identical_predictions() {
        let (train, test) = split(&sample(), 0.2, 7);
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [Algorithm::Logistic, Algorithm::NaiveBayes] {
            let classifier = TopicClassifier::train(&train[..300], &TrainOptions { algorithm, ..Default::default() });
            let path = dir.path().join("topics.model");
            classifier.save(&path).unwrap();
            let loaded = TopicClassifier::load(&path).unwrap();
            assert_eq!(loaded.labels(), classifier.labels());
            for (text, _) in test.iter().take(50) {
                assert_eq!(loaded.classify(text), classifier.classify(text));
            }
        }
        std::fs::write(dir.path().join("bad"), b"VXTOPIC1\x05").unwrap();
        assert!(TopicClassifier::load(&dir.path().join("bad")).is_err());
    }

    #[test]
    fn classify_survives_odd_input() {
        let examples: Vec<(String, String)> = [
            ("đường hỏng nhiều ổ gà", "infrastructure"),
            ("rác thải gây ô nhiễm", "environment"),
            ("xin cấp sổ đỏ", "land"),
        ]
        .iter()
        .map(|(text, label)| (text.to_string(), label.to_string()))
        .collect();
        let classifier = TopicClassifier::train(&examples, &TrainOptions::default());
        for text in ["", " ", "1234", "\u{301}\u{301}", "😀🏳️‍🌈", "ǅ ß İ ﬃ", "中文 العربية", &"a".repeat(100_000)]
        {
            let ranked = classifier.classify(text);
            assert_eq!(ranked.len(), 3);
            let total: f32 = ranked.iter().map(|(_, confidence)| confidence).sum();
            assert!((total - 1.0).abs() < 1e-4, "{text:?}: {total}");
            assert!(ranked.windows(2).all(|pair| pair[0].1 >= pair[1].1));
        }
        assert_eq!(classifier.classify("rac thai o nhiem")[0].0, "environment");
        let empty = TopicClassifier::train(&[], &TrainOptions::default());
        assert!(empty.classify("anything").is_empty());
        assert_eq!(empty.predict("anything"), None);
        assert_eq!(empty.evaluate(&examples).accuracy, 0.0);
    }

    #[test]
    fn split_is_deterministic_and_complete() {
        let items: Vec<u32> = (0..100).collect();
        let (train, test) = split(&items, 0.2, 1);
        assert_eq!((train.len(), test.len()), (80, 20));
        assert_eq!(split(&items, 0.2, 1), (train.clone(), test.clone()));
        let mut all: Vec<u32> = train.into_iter().chain(test).collect();
        all.sort();
        assert_eq!(all, items);
    }

    #[test]
    fn evaluation_counts_per_label() {
        let evaluation = Evaluation::from_predictions([("a", "a"), ("a", "b"), ("b", "b"), ("c", "")]);
        assert_eq!(evaluation.accuracy, 0.5);
        let a = &evaluation.per_label[0];
        assert_eq!((a.label.as_str(), a.precision, a.recall, a.support), ("a", 1.0, 0.5, 2));
        let c = &evaluation.per_label[2];
        assert_eq!((c.f1, c.support), (0.0, 1));
    }
}
