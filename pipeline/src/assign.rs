//! Topic assignment on the way to the lake: the taxonomy's rules first, a trained model where
//! the rules are silent or disagree.
//!
//! Rules are what staff write and can read back ("thu hồi đất" is land), so a single matching
//! topic wins outright with confidence 1. Where the rules of several topics match, the model
//! (if one is configured) chooses among them, and its probabilities, renormalised over those
//! topics, are the confidence; without a model the topic with the most matching rules wins, with
//! its share of the matches as confidence. Where no rule matches, the model's best topic is kept
//! when it is at least [`TopicAssigner::min_confidence`] sure; otherwise the petition stays
//! unclassified (`topic = None`), which summaries show as such rather than guess.

use std::sync::Arc;

use tracing::warn;
use voxpop_schema::Petition;
use voxpop_schema::topics::Taxonomy;

use crate::topics::TopicClassifier;

/// Below this the model's guess for a petition no rule matches is not kept.
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.5;

/// Assigns topic codes of one taxonomy to petitions.
#[derive(Clone)]
pub struct TopicAssigner {
    taxonomy: Arc<Taxonomy>,
    model: Option<Arc<TopicClassifier>>,
    /// Index in the taxonomy of each model label; `None` for labels the taxonomy lacks.
    model_topics: Vec<Option<usize>>,
    min_confidence: f32,
}

impl std::fmt::Debug for TopicAssigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicAssigner")
            .field("topics", &self.taxonomy.topics().len())
            .field("model", &self.model.as_ref().map(|model| model.labels().len()))
            .field("min_confidence", &self.min_confidence)
            .finish()
    }
}

impl TopicAssigner {
    /// Rules only.
    pub fn new(taxonomy: Arc<Taxonomy>) -> TopicAssigner {
        TopicAssigner { taxonomy, model: None, model_topics: Vec::new(), min_confidence: DEFAULT_MIN_CONFIDENCE }
    }

    /// Rules and a trained model. Model labels that are no topic code of the taxonomy are never
    /// assigned (a warning names them): a model trained for another taxonomy cannot invent topics.
    pub fn with_model(taxonomy: Arc<Taxonomy>, model: TopicClassifier) -> TopicAssigner {
        let model_topics: Vec<Option<usize>> = model
            .labels()
            .iter()
            .map(|label| taxonomy.topics().iter().position(|topic| &topic.code == label))
            .collect();
        let unknown: Vec<&str> = model
            .labels()
            .iter()
            .zip(&model_topics)
            .filter(|(_, topic)| topic.is_none())
            .map(|(label, _)| label.as_str())
            .collect();
        if !unknown.is_empty() {
            warn!(labels = ?unknown, "model labels that are not topics of the taxonomy are ignored");
        }
        TopicAssigner { taxonomy, model: Some(Arc::new(model)), model_topics, min_confidence: DEFAULT_MIN_CONFIDENCE }
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.taxonomy
    }

    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The least model confidence kept where no rule matches.
    pub fn min_confidence(&self) -> f32 {
        self.min_confidence
    }

    /// The topic of a text and how sure the assignment is.
    pub fn assign(&self, title: &str, body: &str) -> Option<(String, f32)> {
        let hits = self.taxonomy.rule_hits_in(&[title, body]);
        let matched: Vec<usize> = (0..hits.len()).filter(|&i| hits[i] > 0).collect();
        let code = |topic: usize| self.taxonomy.topics()[topic].code.clone();
        if matched.len() == 1 {
            return Some((code(matched[0]), 1.0));
        }
        let model_scores = self.model_scores(title, body);
        if matched.is_empty() {
            let (topic, confidence) = model_scores
                .iter()
                .enumerate()
                .filter_map(|(topic, score)| score.map(|score| (topic, score)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
            return (confidence >= self.min_confidence).then(|| (code(topic), confidence));
        }
        // Several topics' rules match: the model decides among them, or else the rule count.
        let weight = |topic: usize| match &model_scores[topic] {
            Some(score) => *score,
            None if self.model.is_some() => 0.0,
            None => hits[topic] as f32,
        };
        let total: f32 = matched.iter().map(|&topic| weight(topic)).sum();
        if total <= 0.0 {
            // The model knows none of the matching topics: fall back to counting rules.
            let total: usize = matched.iter().map(|&topic| hits[topic]).sum();
            let best = *matched.iter().max_by(|&&a, &&b| hits[a].cmp(&hits[b]).then(b.cmp(&a)))?;
            return Some((code(best), hits[best] as f32 / total as f32));
        }
        let best = *matched.iter().max_by(|&&a, &&b| weight(a).total_cmp(&weight(b)).then(b.cmp(&a)))?;
        Some((code(best), weight(best) / total))
    }

    /// The model's probability per taxonomy topic (`None` without a model or for topics it lacks).
    fn model_scores(&self, title: &str, body: &str) -> Vec<Option<f32>> {
        let mut scores = vec![None; self.taxonomy.topics().len()];
        if let Some(model) = &self.model {
            for (label, score) in model.classify(&format!("{title}. {body}")) {
                let position = model.labels().iter().position(|known| *known == label);
                if let Some(Some(topic)) = position.map(|i| self.model_topics[i]) {
                    scores[topic] = Some(score);
                }
            }
        }
        scores
    }

    /// Sets `topic` and `topic_confidence` of every petition (unclassified ones get `None`), on
    /// all cores for large batches.
    pub fn assign_all(&self, petitions: &mut [Petition]) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        if threads > 1 && petitions.len() >= 2_000 {
            let chunk = petitions.len().div_ceil(threads);
            std::thread::scope(|scope| {
                for part in petitions.chunks_mut(chunk) {
                    scope.spawn(move || self.assign_each(part));
                }
            });
        } else {
            self.assign_each(petitions);
        }
    }

    /// [`TopicAssigner::assign_all`] on the calling thread only: for callers that already keep
    /// the cores busy with several batches at once (the pipeline's chunks), where splitting each
    /// batch again would only add threads that compete for the same cores.
    pub fn assign_each(&self, petitions: &mut [Petition]) {
        for petition in petitions {
            let assigned = self.assign(&petition.title, &petition.body);
            petition.topic_confidence = assigned.as_ref().map(|(_, confidence)| *confidence);
            petition.topic = assigned.map(|(code, _)| code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::TrainOptions;

    fn rules() -> TopicAssigner {
        TopicAssigner::new(Arc::new(Taxonomy::default_embedded().clone()))
    }

    #[test]
    fn one_matching_rule_decides_with_full_confidence() {
        let assigned = rules().assign("Thu hồi đất không thỏa đáng", "Gia đình tôi bị thu hồi đất làm đường");
        assert_eq!(assigned, Some(("land".to_owned(), 1.0)));
        assert_eq!(rules().assign("Xin chào", "Cảm ơn cán bộ đã nhiệt tình"), None);
    }

    #[test]
    fn several_matching_topics_without_a_model_go_by_rule_count() {
        // Land has two matching rules here (thu hồi đất, bồi thường + đất), environment one.
        let (topic, confidence) = rules()
            .assign("Bồi thường thu hồi đất", "Khu tái định cư có rác thải, đề nghị bồi thường đất thỏa đáng")
            .unwrap();
        assert_eq!(topic, "land");
        assert!(confidence > 0.5 && confidence < 1.0, "{confidence}");
    }

    #[test]
    fn the_model_decides_where_rules_are_silent_and_only_when_sure() {
        let taxonomy = Arc::new(Taxonomy::default_embedded().clone());
        let mut examples = Vec::new();
        for i in 0..40 {
            examples.push((format!("cống thoát nước bị tắc gây ngập nhà dân số {i}"), "infrastructure".to_owned()));
            examples.push((format!("học sinh thiếu phòng học và giáo viên lớp {i}"), "education".to_owned()));
            examples.push((format!("nhãn hiệu lạ nhóm {i}"), "not_a_topic".to_owned()));
        }
        let model = TopicClassifier::train(&examples, &TrainOptions::default());
        let assigner = TopicAssigner::with_model(taxonomy, model);
        let (topic, confidence) = assigner.assign("Cống bị tắc", "Cống thoát nước bị tắc, mưa là ngập").unwrap();
        assert_eq!(topic, "infrastructure");
        assert!(confidence >= DEFAULT_MIN_CONFIDENCE);
        // A rule still wins outright.
        assert_eq!(assigner.assign("Thu hồi đất", "thu hồi đất").unwrap(), ("land".to_owned(), 1.0));
        // Labels outside the taxonomy are never assigned.
        let assigned = assigner.assign("Nhãn hiệu lạ", "nhãn hiệu lạ nhóm 3");
        assert_ne!(assigned.map(|(topic, _)| topic).as_deref(), Some("not_a_topic"));
    }
}
