//! `voxpop topics train` and `voxpop topics eval`: the topic classifier from labelled JSON lines;
//! `voxpop topics reclassify`: a changed taxonomy or model applied to the whole lake.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use voxpop_pipeline::topics::{Algorithm, Evaluation, KeywordBaseline, TopicClassifier, TrainOptions, split};

use voxpop_pipeline::assign::TopicAssigner;
use voxpop_pipeline::lake::PetitionLake;
use voxpop_schema::topics::Taxonomy;

use crate::commands::progress_bar;
use crate::stack::DataLayout;

/// The topic assigner of a deployment: its taxonomy file (or the shipped one) and, if given, a
/// trained model.
pub fn assigner(taxonomy: Option<&Path>, model: Option<&Path>) -> anyhow::Result<TopicAssigner> {
    let taxonomy = match taxonomy {
        Some(path) => {
            let source =
                std::fs::read_to_string(path).with_context(|| format!("reading the taxonomy {}", path.display()))?;
            Taxonomy::from_toml_str(&source).with_context(|| format!("taxonomy {}", path.display()))?
        }
        None => Taxonomy::default_embedded().clone(),
    };
    let taxonomy = std::sync::Arc::new(taxonomy);
    Ok(match model {
        Some(path) => {
            let model =
                TopicClassifier::load(path).with_context(|| format!("reading the topic model {}", path.display()))?;
            TopicAssigner::with_model(taxonomy, model)
        }
        None => TopicAssigner::new(taxonomy),
    })
}

/// Re-applies topics to every petition of the lake in one commit, then rebuilds the index.
pub async fn reclassify(data_dir: &Path, taxonomy: Option<&Path>, model: Option<&Path>) -> anyhow::Result<()> {
    let assigner = assigner(taxonomy, model)?;
    let layout = DataLayout::new(data_dir);
    let mut lake = PetitionLake::open_or_create(&layout.petitions_table()).await?;
    let total = lake.count().await?;
    let bar = progress_bar(total as u64, "reclassifying");
    let mut counts: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let (version, rows) = lake
        .rewrite_all(|petitions| {
            assigner.assign_all(petitions);
            for petition in petitions.iter() {
                *counts.entry(petition.topic.clone().unwrap_or_else(|| "(none)".to_owned())).or_default() += 1;
            }
            bar.inc(petitions.len() as u64);
        })
        .await?;
    bar.finish();
    println!("reclassified {rows} petitions (lake version {version}):");
    for (topic, count) in &counts {
        println!("  {topic:<16} {count}");
    }
    drop(lake);
    crate::commands::reindex(data_dir).await
}

/// Keywords per label in the baseline.
const BASELINE_KEYWORDS: usize = 20;
/// Petition-sized texts for the throughput figure: intake caps nothing, but most petitions are
/// around a kilobyte.
const PETITION_BYTES: usize = 1024;

/// Which fields of each JSON line hold the text and the label.
#[derive(Debug, Clone)]
pub struct Fields {
    pub text: String,
    pub label: String,
}

/// Trains on every line of `file` and writes the model to `out`.
pub async fn train(file: PathBuf, out: PathBuf, fields: Fields, algorithm: Algorithm) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let examples = read_examples(&file, &fields)?;
        let options = TrainOptions { algorithm, ..TrainOptions::default() };
        let (classifier, elapsed) = train_timed(&examples, &options);
        classifier.save(&out).with_context(|| format!("writing the model to {}", out.display()))?;
        println!(
            "trained {:?} on {} examples, {} labels, in {:.2} s; model written to {}",
            algorithm,
            examples.len(),
            classifier.labels().len(),
            elapsed.as_secs_f64(),
            out.display()
        );
        Ok(())
    })
    .await?
}

/// Evaluates a saved model on all of `file`, or, without `model`, trains on a seeded shuffled
/// split of `file` and evaluates on the rest, next to the keyword baseline trained on the same
/// split.
pub async fn eval(
    file: PathBuf,
    model: Option<PathBuf>,
    split_fraction: f64,
    seed: u64,
    fields: Fields,
    algorithm: Algorithm,
) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&split_fraction) || split_fraction == 0.0 {
        bail!("`--split` must be between 0 and 1 (exclusive), not {split_fraction}");
    }
    tokio::task::spawn_blocking(move || {
        let examples = read_examples(&file, &fields)?;
        let (classifier, test, baseline) = match model {
            Some(path) => {
                let classifier = TopicClassifier::load(&path)
                    .with_context(|| format!("reading the model from {}", path.display()))?;
                println!(
                    "model {} ({:?}), evaluated on all {} examples",
                    path.display(),
                    classifier.algorithm(),
                    examples.len()
                );
                (classifier, examples, None)
            }
            None => {
                let (train, test) = split(&examples, split_fraction, seed);
                println!(
                    "{} examples: training on {}, evaluating on {} (seed {seed})",
                    examples.len(),
                    train.len(),
                    test.len()
                );
                let options = TrainOptions { algorithm, seed, ..TrainOptions::default() };
                let (classifier, elapsed) = train_timed(&train, &options);
                println!("classifier ({algorithm:?}) trained in {:.2} s", elapsed.as_secs_f64());
                let started = Instant::now();
                let baseline = KeywordBaseline::train(&train, BASELINE_KEYWORDS);
                println!("baseline (keywords) trained in {:.2} s", started.elapsed().as_secs_f64());
                (classifier, test, Some(baseline))
            }
        };
        if test.is_empty() {
            bail!("no examples to evaluate");
        }
        let evaluation = classifier.evaluate(&test);
        println!();
        print_per_label(&evaluation);
        println!();
        println!("{:<28} {:>9} {:>9}", "", "accuracy", "macro-F1");
        println!(
            "{:<28} {:>9.3} {:>9.3}",
            format!("classifier ({algorithm:?})", algorithm = classifier.algorithm()),
            evaluation.accuracy,
            evaluation.macro_f1
        );
        if let Some(baseline) = &baseline {
            let scores = baseline.evaluate(&test);
            println!(
                "{:<28} {:>9.3} {:>9.3}",
                format!("baseline ({BASELINE_KEYWORDS} keywords/label)"),
                scores.accuracy,
                scores.macro_f1
            );
            let majority = baseline.majority_label().unwrap_or_default();
            let majority_scores =
                Evaluation::from_predictions(test.iter().map(|(_, label)| (label.as_str(), majority)));
            println!(
                "{:<28} {:>9.3} {:>9.3}",
                "baseline (majority class)", majority_scores.accuracy, majority_scores.macro_f1
            );
        }
        println!();
        let texts: Vec<String> = test.iter().map(|(text, _)| text.clone()).collect();
        report_throughput(&classifier, "as given", &texts);
        let petition_sized: Vec<String> = texts
            .iter()
            .map(|text| truncate(text, PETITION_BYTES).to_owned())
            .filter(|text| !text.is_empty())
            .collect();
        report_throughput(&classifier, "first 1 KB of each", &petition_sized);
        Ok(())
    })
    .await?
}

fn train_timed(examples: &[(String, String)], options: &TrainOptions) -> (TopicClassifier, Duration) {
    let bar = progress_bar(0, "training");
    let started = Instant::now();
    let classifier = TopicClassifier::train_with_progress(examples, options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    (classifier, elapsed)
}

/// Classifies `texts` over and over, sequentially on this thread, for about two seconds.
fn report_throughput(classifier: &TopicClassifier, what: &str, texts: &[String]) {
    if texts.is_empty() {
        return;
    }
    let bar = progress_bar(0, "measuring throughput");
    bar.enable_steady_tick(Duration::from_millis(200));
    let per_second = voxpop_pipeline::topics::measure_throughput(classifier, texts, Duration::from_secs(2));
    bar.finish_and_clear();
    let mean_bytes = texts.iter().map(String::len).sum::<usize>() as f64 / texts.len() as f64;
    println!(
        "throughput, one thread, texts {what} (mean {:.0} bytes): {:.0} texts/s, {:.1} MB/s",
        mean_bytes,
        per_second,
        per_second * mean_bytes / 1e6
    );
}

fn print_per_label(evaluation: &Evaluation) {
    println!("{:<28} {:>9} {:>9} {:>9} {:>9}", "label", "precision", "recall", "F1", "support");
    for scores in &evaluation.per_label {
        println!(
            "{:<28} {:>9.3} {:>9.3} {:>9.3} {:>9}",
            scores.label, scores.precision, scores.recall, scores.f1, scores.support
        );
    }
}

/// Reads `(text, label)` from JSON lines; blank lines are skipped, anything else malformed is an
/// error naming the line.
fn read_examples(path: &Path, fields: &Fields) -> anyhow::Result<Vec<(String, String)>> {
    let content = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = content.lines().collect();
    let bar = progress_bar(lines.len() as u64, "reading examples");
    let mut examples = Vec::with_capacity(lines.len());
    for (number, line) in lines.iter().enumerate() {
        bar.inc(1);
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), number + 1);
        let value: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let field = |name: &str| -> anyhow::Result<String> {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{}: no string field `{name}`", at()))
        };
        examples.push((field(&fields.text)?, field(&fields.label)?));
    }
    bar.finish_and_clear();
    Ok(examples)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
