//! Per-record work between the log and the lake: decode, re-validate, normalise unit codes,
//! detect the language.

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};
use voxpop_schema::{FieldError, Petition, Units};

/// Characters of a petition the language detector looks at: enough for a confident answer on
/// real text, and it bounds the cost of the longest bodies.
const DETECTION_PREFIX_CHARS: usize = 80;

/// The languages petitions arrive in. Vietnamese and English; French for older correspondence.
pub const LANGUAGES: [Language; 3] = [Language::Vietnamese, Language::English, Language::French];

pub struct Enricher {
    units: &'static Units,
    detector: LanguageDetector,
}

impl Enricher {
    pub fn new(units: &'static Units) -> Enricher {
        // Low-accuracy mode uses trigrams only: as accurate as the full models on texts of a
        // sentence or more (petitions are), several times faster.
        let detector = LanguageDetectorBuilder::from_languages(&LANGUAGES)
            .with_preloaded_language_models()
            .with_low_accuracy_mode()
            .build();
        Enricher { units, detector }
    }

    /// Decodes and checks one log record; `Err` carries the dead-letter reason.
    pub fn prepare(&self, payload: &[u8]) -> Result<Petition, (String, Vec<FieldError>)> {
        let mut petition = Petition::from_json_slice(payload).map_err(|err| (err.to_string(), Vec::new()))?;
        // Other producers on a shared Kafka cluster may send pre-2025 codes or no province.
        if self.units.commune(&petition.commune_code).is_none()
            && let Ok(resolved) = self.units.resolve_commune(&petition.commune_code, None)
        {
            petition.original_unit_code.get_or_insert_with(|| petition.commune_code.clone());
            petition.commune_code = resolved.commune.code.clone();
        }
        if petition.province_code.is_empty()
            && let Some(commune) = self.units.commune(&petition.commune_code)
        {
            petition.province_code = commune.province_code.clone();
        }
        let errors = petition.validate(self.units);
        if !errors.is_empty() {
            let reason = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Err((format!("invalid petition: {reason}"), errors));
        }
        Ok(petition)
    }

    /// Sets `language` (ISO 639-1) on every petition that has none.
    pub fn detect_languages(&self, petitions: &mut [Petition]) {
        let pending: Vec<usize> = (0..petitions.len()).filter(|&i| petitions[i].language.is_none()).collect();
        if pending.is_empty() {
            return;
        }
        let mut ambiguous = Vec::with_capacity(pending.len());
        let mut texts = Vec::with_capacity(pending.len());
        for i in pending {
            let text = detection_text(&petitions[i]);
            if clearly_vietnamese(&text) || clearly_vietnamese_whole(&petitions[i]) {
                petitions[i].language = Some("vi".to_owned());
            } else {
                ambiguous.push(i);
                texts.push(text);
            }
        }
        let detected = self.detector.detect_languages_in_parallel_of(&texts);
        for (i, language) in ambiguous.into_iter().zip(detected) {
            petitions[i].language = language.map(|l| l.iso_code_639_1().to_string());
        }
    }

    /// True when script evidence alone makes `petition` Vietnamese, without the statistical
    /// detector (see [`Enricher::detect_languages`]); the benchmarks count these.
    pub fn decided_by_script(petition: &Petition) -> bool {
        clearly_vietnamese(&detection_text(petition)) || clearly_vietnamese_whole(petition)
    }

    /// Language of one text, for callers outside the pipeline.
    pub fn detect(&self, text: &str) -> Option<String> {
        self.detector.detect_language_of(text).map(|l| l.iso_code_639_1().to_string())
    }
}

/// Letters that, among the detector's [`LANGUAGES`], only Vietnamese writes: ă, đ, ơ, ư and the
/// Latin Extended Additional vowels with a tone or hook (ạ ả ấ ... ỹ).
fn vietnamese_only(ch: char) -> bool {
    matches!(ch, 'ă' | 'Ă' | 'đ' | 'Đ' | 'ơ' | 'Ơ' | 'ư' | 'Ư' | '\u{1EA0}'..='\u{1EF9}')
}

/// Script evidence that settles the language without the statistical detector: at least half of
/// the words (and at least 4) carry a letter only Vietnamese writes. Most petitions are
/// Vietnamese and this check is ~50 times cheaper than a detection; an English or French text
/// that quotes Vietnamese names stays far below half and still goes to the detector.
fn clearly_vietnamese(text: &str) -> bool {
    script_evidence(&[text])
}

/// [`clearly_vietnamese`] over the whole title and body, for petitions whose first words alone
/// do not settle it: about 5% of Vietnamese petitions start with fewer marked words than
/// half. The whole text is a larger sample than the detector's prefix, and a foreign text that
/// quotes Vietnamese names stays below half over its whole length too.
fn clearly_vietnamese_whole(petition: &Petition) -> bool {
    script_evidence(&[&petition.title, &petition.body])
}

fn script_evidence(parts: &[&str]) -> bool {
    let (mut words, mut marked) = (0usize, 0usize);
    for word in parts.iter().flat_map(|part| part.split_whitespace()) {
        words += 1;
        if word.chars().any(vietnamese_only) {
            marked += 1;
        }
    }
    marked >= 4 && marked * 2 >= words
}

fn detection_text(petition: &Petition) -> String {
    let mut text = String::with_capacity(DETECTION_PREFIX_CHARS * 2);
    text.push_str(&petition.title);
    text.push_str(". ");
    text.extend(petition.body.chars().take(DETECTION_PREFIX_CHARS));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_vietnamese_and_english() {
        let enricher = Enricher::new(Units::embedded());
        assert_eq!(enricher.detect("Đề nghị chính quyền sửa chữa con đường bị hư hỏng nặng").as_deref(), Some("vi"));
        assert_eq!(
            enricher.detect("The road in front of the school has been damaged for months").as_deref(),
            Some("en")
        );
    }

    #[test]
    fn the_detection_prefix_is_enough_on_real_text() {
        let enricher = Enricher::new(Units::embedded());
        let path = voxpop_schema::source_file("connectors/data/vntc_train_sample.jsonl");
        let news = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let mut petitions: Vec<Petition> = news
            .lines()
            .map(|line| {
                let article: serde_json::Value = serde_json::from_str(line).unwrap();
                let text = article["text"].as_str().unwrap();
                let title: String = text.chars().take(60).collect();
                Petition::builder().title(&title).body(text).build()
            })
            .collect();
        enricher.detect_languages(&mut petitions);
        let vietnamese = petitions.iter().filter(|p| p.language.as_deref() == Some("vi")).count();
        assert!(vietnamese >= 995, "{vietnamese} of 1000 Vietnamese articles detected as Vietnamese");
        let mut english = vec![
            Petition::builder()
                .title("Broken street lights")
                .body("The street lights on our road have not worked for three months and the area is unsafe at night.")
                .build(),
        ];
        enricher.detect_languages(&mut english);
        assert_eq!(english[0].language.as_deref(), Some("en"));
    }

    #[test]
    fn script_evidence_decides_only_clear_cases() {
        assert!(clearly_vietnamese("Đề nghị chính quyền sửa chữa con đường bị hư hỏng nặng"));
        // Four words of eleven: English quoting Vietnamese names goes to the detector.
        let quoting = "The road at Đường Nguyễn Huệ near Chợ Bến Thành is flooded every week";
        assert!(!clearly_vietnamese(quoting));
        // Vietnamese typed without diacritics has no script evidence: the detector decides.
        assert!(!clearly_vietnamese("De nghi chinh quyen sua chua con duong bi hu hong nang"));
        // A letter in English about a Vietnamese street stays below half over its whole text.
        let letter = Petition::builder()
            .title("Flooding at Chợ Bến Thành")
            .body(&format!("{quoting}. The drains near Đường Lê Lợi and Phường Bến Nghé are blocked as well."))
            .build();
        assert!(!clearly_vietnamese_whole(&letter));
        // A petition whose title is typed without diacritics: its first words are not enough,
        // its whole text is.
        let petition = Petition::builder()
            .title("Kien nghi ve duong giao thong")
            .body("Con đường tại thôn có nhiều ổ gà, trời mưa nước đọng, người dân đi lại rất khó khăn và nguy hiểm, đề nghị chính quyền sớm sửa chữa.")
            .build();
        assert!(!clearly_vietnamese(&detection_text(&petition)));
        assert!(clearly_vietnamese_whole(&petition));
    }

    #[test]
    fn maps_old_codes_and_rejects_unknown_ones() {
        let enricher = Enricher::new(Units::embedded());
        let mut petition = Petition::builder().build();
        petition.commune_code = "00001".into();
        petition.province_code = String::new();
        let prepared = enricher.prepare(&petition.to_json_bytes()).unwrap();
        assert_eq!(prepared.commune_code, "00097");
        assert_eq!(prepared.province_code, "01");
        assert_eq!(prepared.original_unit_code.as_deref(), Some("00001"));
        petition.commune_code = "99999".into();
        let (reason, errors) = enricher.prepare(&petition.to_json_bytes()).unwrap_err();
        assert!(reason.contains("99999"), "{reason}");
        assert_eq!(errors[0].field, "commune_code");
        let (reason, _) = enricher.prepare(b"not json").unwrap_err();
        assert!(reason.contains("malformed"), "{reason}");
    }
}
