//! The topic taxonomy: the stable codes petitions are filed under, their labels, and the word
//! rules that route a petition to a topic.
//!
//! The taxonomy is configuration, not code: the default ships as `schema/data/topics.toml` and
//! is compiled in ([`Taxonomy::default_embedded`]); a deployment may load its own
//! ([`Taxonomy::from_toml_str`]). Rules are matched diacritic- and case-insensitively on whole
//! syllables, so a rule written with Vietnamese diacritics also finds text typed without them.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::error::{SchemaError, SchemaResult};
use crate::short_keys::ShortKeyMap;

const DEFAULT_TOML: &str = include_str!("../data/topics.toml");

/// The topics of a deployment, in display order.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    topics: Vec<Topic>,
    phrases: PhraseIndex,
}

/// Every rule phrase of a taxonomy, indexed by its first syllable, so that one pass over a
/// text's syllables finds all phrases it contains (instead of one scan per phrase: the default
/// taxonomy has ~100 phrases, and the pipeline runs this on every petition).
///
/// Phrases are held as syllable ids: a text's syllable is looked up once (most are in no
/// phrase and are rejected by length and first letter before any hashing), and phrases are
/// compared as integers.
#[derive(Debug, Clone, Default)]
struct PhraseIndex {
    /// The id of each syllable that occurs in some phrase.
    syllable_ids: rustc_hash::FxHashMap<String, u32>,
    /// Bit `len` of entry `first byte` is set when some phrase syllable has that first byte and
    /// that length (lengths over 31 share bit 31): a cheap test before the hash lookup.
    shapes: Vec<u32>,
    phrases: Vec<Vec<u32>>,
    /// Phrase ids by the id of their first syllable.
    by_first: Vec<Vec<usize>>,
    /// (topic index, the rule's phrases as global ids, its expression over them) per rule.
    rules: Vec<(usize, Vec<usize>, Expr)>,
    /// Which index this is, for the per-thread [`RunCache`]: clones share it (and their ids).
    generation: u64,
}

/// A syllable that is in no phrase.
const NO_SYLLABLE: u32 = u32::MAX;

/// Word runs ([`crate::text::WordRuns`]) with the syllable ids they fold to, remembered
/// per thread for one [`PhraseIndex`] at a time.
///
/// Folding a run character by character, or lower-casing an ASCII one and hashing it, costs
/// several times more than one look-up here, and text repeats its syllables: Vietnamese has about
/// 7,000 (more with case variants), so after a few petitions nearly every run is found. The bound
/// only stops junk from growing it. Runs longer than [`crate::short_keys::MAX_KEY`] bytes (no
/// Vietnamese syllable is) are folded each time.
struct RunCache {
    generation: u64,
    /// The run's syllable id ([`NO_SYLLABLE`] included), or [`RUN_OF_MARKS`], or
    /// [`SEVERAL_SYLLABLES`].
    runs: ShortKeyMap<u32>,
}

/// Cached for a run of marks alone: no syllable.
const RUN_OF_MARKS: u32 = u32::MAX - 1;
/// Cached for a run with a non-ASCII separator inside: split again each time (rare).
const SEVERAL_SYLLABLES: u32 = u32::MAX - 2;

const RUN_CACHE_CAPACITY: usize = 1 << 16;

thread_local! {
    static RUN_CACHE: RefCell<RunCache> =
        RefCell::new(RunCache { generation: 0, runs: ShortKeyMap::with_max_entries(RUN_CACHE_CAPACITY) });
}

impl PhraseIndex {
    fn new(topics: &[Topic]) -> PhraseIndex {
        static GENERATIONS: AtomicU64 = AtomicU64::new(1);
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        let mut index = PhraseIndex { shapes: vec![0; 256], generation, ..PhraseIndex::default() };
        let mut ids: HashMap<Vec<String>, usize> = HashMap::new();
        for (topic_index, topic) in topics.iter().enumerate() {
            for rule in &topic.rules {
                let phrase_ids = rule
                    .folded
                    .iter()
                    .map(|phrase| match ids.get(phrase) {
                        Some(&id) => id,
                        None => {
                            let syllables: Vec<u32> = phrase.iter().map(|s| index.syllable_id_or_insert(s)).collect();
                            let id = index.phrases.len();
                            index.by_first[syllables[0] as usize].push(id);
                            index.phrases.push(syllables);
                            ids.insert(phrase.clone(), id);
                            id
                        }
                    })
                    .collect();
                index.rules.push((topic_index, phrase_ids, rule.expr.clone()));
            }
        }
        index
    }

    fn syllable_id_or_insert(&mut self, syllable: &str) -> u32 {
        if let Some(&id) = self.syllable_ids.get(syllable) {
            return id;
        }
        let id = self.syllable_ids.len() as u32;
        self.syllable_ids.insert(syllable.to_owned(), id);
        self.by_first.push(Vec::new());
        let first = usize::from(syllable.as_bytes()[0]);
        self.shapes[first] |= 1 << syllable.len().min(31);
        id
    }

    fn syllable_id(&self, syllable: &str) -> u32 {
        let first = usize::from(syllable.as_bytes()[0]);
        if self.shapes[first] & (1 << syllable.len().min(31)) == 0 {
            return NO_SYLLABLE;
        }
        self.syllable_ids.get(syllable).copied().unwrap_or(NO_SYLLABLE)
    }

    /// Matched rules per topic, over the syllables of `parts` read one after the other.
    fn rule_hits_in(&self, parts: &[&str], topics: usize) -> Vec<usize> {
        let mut ids = Vec::with_capacity(parts.iter().map(|part| part.len() / 4).sum());
        self.with_run_cache(|cache| {
            for part in parts {
                self.push_syllable_ids(part, cache, &mut ids);
            }
        });
        self.hits_of_ids(&ids, topics)
    }

    /// Runs `work` with this thread's [`RunCache`], emptied first if it was filled for another index.
    fn with_run_cache<T>(&self, work: impl FnOnce(&mut RunCache) -> T) -> T {
        RUN_CACHE.with_borrow_mut(|cache| {
            if cache.generation != self.generation {
                cache.runs.clear();
                cache.generation = self.generation;
            }
            work(cache)
        })
    }

    /// Appends the id of each syllable of `text` (as [`for_each_folded_syllable`] splits it). Each
    /// word run is looked up in `cache`; the first time, a run of ASCII letters and digits (one
    /// syllable) goes through the shape test, any other run is folded.
    fn push_syllable_ids(&self, text: &str, cache: &mut RunCache, ids: &mut Vec<u32>) {
        let bytes = text.as_bytes();
        let mut syllable = String::new();
        for (from, to) in crate::text::WordRuns::new(text) {
            let run = &bytes[from..to];
            match cache.runs.get_in(bytes, from, to) {
                Some(RUN_OF_MARKS) => {}
                Some(id) if id != SEVERAL_SYLLABLES => ids.push(id),
                cached if run.is_ascii() => {
                    let id = self.ascii_syllable_id(run, &mut syllable);
                    ids.push(id);
                    if cached.is_none() {
                        cache.runs.insert(run, id);
                    }
                }
                cached => {
                    let first = ids.len();
                    for_each_folded_syllable(&text[from..to], &mut syllable, |s| ids.push(self.syllable_id(s)));
                    if cached.is_none() {
                        let found = match ids[first..] {
                            [] => RUN_OF_MARKS,
                            [id] => id,
                            _ => SEVERAL_SYLLABLES,
                        };
                        // Refused (not stored) when the run is too long to be a syllable.
                        cache.runs.insert(run, found);
                    }
                }
            }
        }
    }

    /// [`PhraseIndex::syllable_id`] of a run of ASCII letters and digits, lower-cased into
    /// `buffer` only when its first letter and length are those of some phrase syllable.
    fn ascii_syllable_id(&self, run: &[u8], buffer: &mut String) -> u32 {
        let first = usize::from(run[0].to_ascii_lowercase());
        if self.shapes[first] & (1 << run.len().min(31)) == 0 {
            return NO_SYLLABLE;
        }
        buffer.clear();
        buffer.extend(run.iter().map(|byte| char::from(byte.to_ascii_lowercase())));
        self.syllable_ids.get(buffer.as_str()).copied().unwrap_or(NO_SYLLABLE)
    }

    /// Matched rules per topic, over syllables already folded.
    fn rule_hits<S: AsRef<str>>(&self, syllables: &[S], topics: usize) -> Vec<usize> {
        let ids: Vec<u32> = syllables
            .iter()
            .map(|s| if s.as_ref().is_empty() { NO_SYLLABLE } else { self.syllable_id(s.as_ref()) })
            .collect();
        self.hits_of_ids(&ids, topics)
    }

    fn hits_of_ids(&self, ids: &[u32], topics: usize) -> Vec<usize> {
        let mut found = vec![false; self.phrases.len()];
        for (start, &first) in ids.iter().enumerate() {
            if first == NO_SYLLABLE {
                continue;
            }
            let rest = &ids[start..];
            for &id in &self.by_first[first as usize] {
                let phrase = &self.phrases[id];
                if !found[id] && rest.starts_with(phrase) {
                    found[id] = true;
                }
            }
        }
        let mut hits = vec![0; topics];
        for (topic, phrase_ids, expr) in &self.rules {
            if expr.eval(&|local| found[phrase_ids[local]]) {
                hits[*topic] += 1;
            }
        }
        hits
    }
}

/// One topic: a stable code, its labels and the rules that route text to it.
#[derive(Debug, Clone)]
pub struct Topic {
    /// Stable identifier (`land`, `environment`): stored with petitions, never renamed.
    pub code: String,
    /// Vietnamese display label.
    pub vi: String,
    /// English display label.
    pub en: String,
    /// Any one matching rule routes a text to this topic.
    pub rules: Vec<Rule>,
}

/// One rule: a query in the index's query language, matched on a text's folded syllables.
///
/// The syntax is the search box's: `"quoted phrases"`, bare words (each must occur), `AND`
/// (implied between terms), `OR`, `NOT` or a leading `-` to exclude, and parentheses; e.g.
/// `"bồi thường" AND (đất OR "giải phóng mặt bằng") -"bảo hiểm"`. As in the index, matching
/// ignores diacritics and case and works on whole syllables. The older form, a list of
/// phrases that must all occur (`["bồi thường", "đất"]`), reads as `"bồi thường" "đất"`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule as written.
    pub query: String,
    /// The phrases the rule looks for (outside exclusions): keywords of the topic.
    pub phrases: Vec<String>,
    /// Every phrase of the expression as folded, lower-cased syllables, ready to compare.
    folded: Vec<Vec<String>>,
    /// The boolean structure over `folded` (by position).
    expr: Expr,
}

/// A rule's boolean structure; `Phrase(i)` is the rule's `i`-th folded phrase.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Phrase(usize),
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    fn eval(&self, found: &dyn Fn(usize) -> bool) -> bool {
        match self {
            Expr::Phrase(i) => found(*i),
            Expr::All(parts) => parts.iter().all(|part| part.eval(found)),
            Expr::Any(parts) => parts.iter().any(|part| part.eval(found)),
            Expr::Not(inner) => !inner.eval(found),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A quoted phrase or a bare word.
    Text(String),
}

fn tokenize(query: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = query.chars().peekable();
    while let Some(&ch) = chars.peek() {
        match ch {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '-' => {
                chars.next();
                tokens.push(Token::Not);
            }
            '+' => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut phrase = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => phrase.push(c),
                        None => return Err(format!("unclosed quote in `{query}`")),
                    }
                }
                tokens.push(Token::Text(phrase));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if word.contains(':') {
                    return Err(format!("`{word}`: fields (title:, body:) are not used in topic rules"));
                }
                tokens.push(match word.as_str() {
                    "AND" | "&&" => Token::And,
                    "OR" | "||" => Token::Or,
                    "NOT" => Token::Not,
                    _ => Token::Text(word),
                });
            }
        }
    }
    Ok(tokens)
}

/// Recursive descent over the tokens: OR binds loosest, then AND (also implied), then NOT.
struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    folded: Vec<Vec<String>>,
    phrases: Vec<String>,
}

impl Parser<'_> {
    fn or(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.tokens.get(self.at) == Some(&Token::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Expr::Any(parts) })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.unary(false)?];
        loop {
            match self.tokens.get(self.at) {
                None | Some(Token::Or) | Some(Token::Close) => break,
                Some(Token::And) => self.at += 1,
                _ => {}
            }
            parts.push(self.unary(false)?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Expr::All(parts) })
    }

    fn unary(&mut self, negated: bool) -> Result<Expr, String> {
        match self.tokens.get(self.at) {
            Some(Token::Not) => {
                self.at += 1;
                Ok(Expr::Not(Box::new(self.unary(!negated)?)))
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err("missing `)`".to_owned());
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Token::Text(text)) => {
                self.at += 1;
                let syllables = folded_syllables(text);
                if syllables.is_empty() {
                    return Err(format!("`{text}` has no words"));
                }
                if !negated {
                    self.phrases.push(text.trim().to_owned());
                }
                self.folded.push(syllables);
                Ok(Expr::Phrase(self.folded.len() - 1))
            }
            Some(other) => Err(format!("unexpected `{}`", token_text(other))),
            None => Err("the rule ends where a word or phrase was expected".to_owned()),
        }
    }
}

fn token_text(token: &Token) -> &str {
    match token {
        Token::Open => "(",
        Token::Close => ")",
        Token::And => "AND",
        Token::Or => "OR",
        Token::Not => "NOT",
        Token::Text(text) => text,
    }
}

/// The file format: `[[topic]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxonomyFile {
    #[serde(default)]
    topic: Vec<TopicEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicEntry {
    code: String,
    vi: String,
    en: String,
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

/// A rule in the file: a query string, or (the older form) a list of phrases that must all occur.
#[derive(Deserialize)]
#[serde(untagged)]
enum RuleEntry {
    Query(String),
    Phrases(Vec<String>),
}

impl Taxonomy {
    /// The taxonomy shipped with voxpop (`schema/data/topics.toml`).
    pub fn default_embedded() -> &'static Taxonomy {
        static TAXONOMY: OnceLock<Taxonomy> = OnceLock::new();
        TAXONOMY.get_or_init(|| Taxonomy::from_toml_str(DEFAULT_TOML).expect("the shipped topics.toml is valid"))
    }

    /// Parses and checks a taxonomy: unknown keys, duplicate or malformed codes, empty labels
    /// and empty rules are errors.
    pub fn from_toml_str(source: &str) -> SchemaResult<Taxonomy> {
        let file: TaxonomyFile = toml::from_str(source).map_err(|err| SchemaError::Taxonomy(err.to_string()))?;
        if file.topic.is_empty() {
            return Err(SchemaError::Taxonomy("no `[[topic]]` defined".to_owned()));
        }
        let mut seen = HashSet::new();
        let mut topics = Vec::with_capacity(file.topic.len());
        for entry in file.topic {
            let code = entry.code;
            let well_formed = !code.is_empty()
                && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && code.as_bytes()[0].is_ascii_lowercase();
            if !well_formed {
                return Err(SchemaError::Taxonomy(format!(
                    "topic code `{code}` must be lowercase ascii letters, digits and `_`, starting with a letter"
                )));
            }
            if !seen.insert(code.clone()) {
                return Err(SchemaError::Taxonomy(format!("duplicate topic code `{code}`")));
            }
            if entry.vi.trim().is_empty() || entry.en.trim().is_empty() {
                return Err(SchemaError::Taxonomy(format!("topic `{code}` needs both `vi` and `en` labels")));
            }
            let rules = entry
                .rules
                .into_iter()
                .map(|entry| {
                    let parsed = match entry {
                        RuleEntry::Query(query) => Rule::parse(&query),
                        RuleEntry::Phrases(phrases) => Rule::new(phrases),
                    };
                    parsed.map_err(|reason| SchemaError::Taxonomy(format!("topic `{code}`: {reason}")))
                })
                .collect::<SchemaResult<Vec<_>>>()?;
            topics.push(Topic { code, vi: entry.vi, en: entry.en, rules });
        }
        let phrases = PhraseIndex::new(&topics);
        Ok(Taxonomy { topics, phrases })
    }

    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    pub fn topic(&self, code: &str) -> Option<&Topic> {
        self.topics.iter().find(|topic| topic.code == code)
    }

    /// The topics whose rules match `text`, in taxonomy order.
    pub fn matching(&self, text: &str) -> Vec<&Topic> {
        let hits = self.rule_hits(&folded_syllables(text));
        self.topics.iter().zip(hits).filter(|(_, hits)| *hits > 0).map(|(topic, _)| topic).collect()
    }

    /// How many rules of each topic (in taxonomy order) match a text given as
    /// [`folded_syllables`]: one pass over the text, whatever the number of rules.
    pub fn rule_hits<S: AsRef<str>>(&self, syllables: &[S]) -> Vec<usize> {
        self.phrases.rule_hits(syllables, self.topics.len())
    }

    /// [`Taxonomy::rule_hits`] of the texts `parts` read one after the other (e.g. a title and
    /// a body), folded and split in the same pass as the phrases are looked up.
    pub fn rule_hits_in(&self, parts: &[&str]) -> Vec<usize> {
        self.phrases.rule_hits_in(parts, self.topics.len())
    }
}

impl Topic {
    /// True when any of the topic's rules matches `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_syllables(&folded_syllables(text))
    }

    fn matches_syllables(&self, syllables: &[String]) -> bool {
        self.rules.iter().any(|rule| rule.matches_syllables(syllables))
    }
}

impl Rule {
    /// A rule from a list of phrases that must all occur.
    fn new(phrases: Vec<String>) -> Result<Rule, String> {
        if phrases.is_empty() {
            return Err("empty rule".to_owned());
        }
        let folded = phrases.iter().map(|phrase| folded_syllables(phrase)).collect::<Vec<_>>();
        if let Some(index) = folded.iter().position(Vec::is_empty) {
            return Err(format!("rule phrase `{}` has no words", phrases[index]));
        }
        let query = phrases.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(" ");
        let expr = Expr::All((0..folded.len()).map(Expr::Phrase).collect());
        Ok(Rule { query, phrases, folded, expr })
    }

    /// A rule from a query in the index's query language (see [`Rule`]).
    pub fn parse(query: &str) -> Result<Rule, String> {
        let tokens = tokenize(query)?;
        if tokens.is_empty() {
            return Err("empty rule".to_owned());
        }
        let mut parser = Parser { tokens: &tokens, at: 0, folded: Vec::new(), phrases: Vec::new() };
        let expr = parser.or().map_err(|reason| format!("rule `{query}`: {reason}"))?;
        if parser.at < tokens.len() {
            return Err(format!("rule `{query}`: unexpected `{}`", token_text(&tokens[parser.at])));
        }
        // A rule that an empty text satisfies (only exclusions) would file everything.
        if expr.eval(&|_| false) {
            return Err(format!("rule `{query}` must require at least one word or phrase"));
        }
        Ok(Rule { query: query.to_owned(), phrases: parser.phrases, folded: parser.folded, expr })
    }

    /// True when the rule matches `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_syllables(&folded_syllables(text))
    }

    fn matches_syllables(&self, syllables: &[String]) -> bool {
        self.expr.eval(&|i| {
            let phrase = &self.folded[i];
            syllables.windows(phrase.len()).any(|window| window == phrase.as_slice())
        })
    }
}

/// The folded, lower-cased syllables of `text`: runs of letters and digits (see
/// [`for_each_folded_syllable`]).
pub fn folded_syllables(text: &str) -> Vec<String> {
    let mut syllables = Vec::new();
    for_each_folded_syllable(text, &mut String::new(), |syllable| syllables.push(syllable.to_owned()));
    syllables
}

/// Calls `each` with every syllable of `text`: the runs of letters and digits of the text folded
/// ([`crate::text::fold`]) and lower-cased, in one pass and without allocating per syllable
/// (`syllable` is the buffer each one is built in). ASCII and the letters that fold to one ASCII
/// letter (every Vietnamese one) take a byte path.
pub fn for_each_folded_syllable(text: &str, syllable: &mut String, mut each: impl FnMut(&str)) {
    syllable.clear();
    let bytes = text.as_bytes();
    let mut folded = String::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut byte = bytes[at];
        if byte.is_ascii() {
            at += 1;
        } else {
            let ch = text[at..].chars().next().expect("at a char boundary");
            at += ch.len_utf8();
            match crate::text::fold_to_ascii(ch) {
                // Vietnamese letters fold to one ASCII letter: the byte path below.
                Some(ascii) => byte = ascii,
                None => {
                    folded.clear();
                    crate::text::push_folded(ch, &mut folded);
                    for lower in folded.chars().flat_map(char::to_lowercase) {
                        if lower.is_alphanumeric() {
                            syllable.push(lower);
                        } else if !syllable.is_empty() {
                            each(syllable);
                            syllable.clear();
                        }
                    }
                    continue;
                }
            }
        }
        if byte.is_ascii_alphanumeric() {
            syllable.push(char::from(byte.to_ascii_lowercase()));
        } else if !syllable.is_empty() {
            each(syllable);
            syllable.clear();
        }
    }
    if !syllable.is_empty() {
        each(syllable);
        syllable.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phrase_index_agrees_with_rule_by_rule_matching() {
        let taxonomy = Taxonomy::default_embedded();
        let path = crate::source_file("connectors/data/vntc_train_sample.jsonl");
        let news = std::fs::read_to_string(path).unwrap();
        let mut texts: Vec<String> = news
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["text"].as_str().unwrap().to_owned())
            .collect();
        texts.push("Đề nghị bồi thường khi thu hồi đất, rác thải gây ô nhiễm".to_owned());
        let mut matched = 0;
        for text in &texts {
            let slow: Vec<&str> =
                taxonomy.topics().iter().filter(|topic| topic.matches(text)).map(|t| t.code.as_str()).collect();
            let fast: Vec<&str> = taxonomy.matching(text).iter().map(|t| t.code.as_str()).collect();
            assert_eq!(fast, slow, "{text}");
            matched += usize::from(!fast.is_empty());
        }
        assert!(matched > 100, "only {matched} texts matched any rule");
        let hits = taxonomy.rule_hits(&folded_syllables("bồi thường khi thu hồi đất"));
        let land = taxonomy.topics().iter().position(|t| t.code == "land").unwrap();
        assert_eq!(hits[land], 2);
    }

    proptest::proptest! {
        #[test]
        fn the_one_pass_split_agrees_with_fold_then_split(
            text in "([a-zA-Z0-9 .,Đđăâêôơưáàảãạếềểễệốồổỗộớờởỡợứừửữựíìỉĩịýỳỷỹỵ]|\\PC){0,80}"
        ) {
            // Greek's final sigma is lower-cased by context in a whole string, not per letter.
            proptest::prop_assume!(!text.contains('Σ'));
            // The definition: fold the whole text, lower-case it, split on what is not a letter
            // or a digit.
            let folded = crate::text::fold(&text).to_lowercase();
            let expected: Vec<String> =
                folded.split(|ch: char| !ch.is_alphanumeric()).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            proptest::prop_assert_eq!(folded_syllables(&text), expected);
        }
    }

    /// The ids of the syllables of `text` as the one-pass split gives them, one by one.
    fn ids_by_folding(index: &PhraseIndex, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for_each_folded_syllable(text, &mut String::new(), |s| ids.push(index.syllable_id(s)));
        ids
    }

    proptest::proptest! {
        #[test]
        fn syllable_ids_by_word_run_agree_with_folding_each_syllable(
            words in proptest::collection::vec(
                "(thu|hồi|HỒI|đất|Đất|rác|thải|ô|nhiễm|bồi|thường|Hoà|hòa|ngập|x|[a-zA-Z0-9]{1,3}|\\PC{1,3}|[Đđăâơư“”–…×÷ßæ\u{0301}]{1,2})",
                0..40,
            ),
            separators in proptest::collection::vec("[ ,.;\\-]{1,2}|“|×", 40),
        ) {
            let taxonomy = Taxonomy::default_embedded();
            let text: String =
                words.iter().zip(&separators).flat_map(|(word, separator)| [word.as_str(), separator]).collect();
            let expected = ids_by_folding(&taxonomy.phrases, &text);
            // Twice: the first pass fills this thread's cache of runs, the second reads it.
            for _ in 0..2 {
                let mut ids = Vec::new();
                taxonomy.phrases.with_run_cache(|cache| taxonomy.phrases.push_syllable_ids(&text, cache, &mut ids));
                proptest::prop_assert_eq!(&ids, &expected);
            }
        }
    }

    #[test]
    fn the_run_cache_follows_the_taxonomy_in_use() {
        // Two taxonomies with different phrases on one thread: each reads its own ids.
        let taxonomy = |code: &str, rule: &str| {
            Taxonomy::from_toml_str(&format!(
                "[[topic]]\ncode = \"{code}\"\nvi = \"x\"\nen = \"x\"\nrules = ['\"{rule}\"']\n"
            ))
            .unwrap()
        };
        let (land, waste) = (taxonomy("land", "thu hồi đất"), taxonomy("waste", "rác thải"));
        for _ in 0..2 {
            assert_eq!(land.rule_hits_in(&["Thu hồi đất", "rác thải"]), [1]);
            assert_eq!(waste.rule_hits_in(&["Thu hồi đất", "rác thải"]), [1]);
            assert_eq!(waste.rule_hits_in(&["thu hồi đất"]), [0]);
        }
    }

    #[test]
    fn rule_hits_over_parts_agree_with_hits_over_the_joined_text() {
        let taxonomy = Taxonomy::default_embedded();
        for (title, body) in [
            ("Thu hồi đất", "Gia đình tôi bị thu hồi đất làm đường, đề nghị bồi thường thỏa đáng"),
            ("Ô NHIỄM", "Bãi rác gây ô nhiễm môi trường; nước thải chảy ra sông"),
            ("thu hồi", "đất"),
            ("", ""),
        ] {
            let joined = format!("{title}. {body}");
            assert_eq!(taxonomy.rule_hits_in(&[title, ". ", body]), taxonomy.rule_hits(&folded_syllables(&joined)));
            assert_eq!(taxonomy.rule_hits_in(&[title, body]), taxonomy.rule_hits(&folded_syllables(&joined)));
        }
    }

    #[test]
    fn shipped_taxonomy_parses_with_unique_codes() {
        let taxonomy = Taxonomy::from_toml_str(DEFAULT_TOML).unwrap();
        assert_eq!(taxonomy.topics().len(), 12);
        let codes: HashSet<&str> = taxonomy.topics().iter().map(|topic| topic.code.as_str()).collect();
        assert_eq!(codes.len(), taxonomy.topics().len());
        for code in ["land", "environment", "infrastructure", "health", "education", "corruption", "agriculture"] {
            assert!(taxonomy.topic(code).is_some(), "{code}");
        }
        assert!(taxonomy.topics().iter().all(|topic| !topic.rules.is_empty()));
        assert_eq!(Taxonomy::default_embedded().topics().len(), 12);
    }

    #[test]
    fn rules_match_without_diacritics_on_whole_syllables() {
        let taxonomy = Taxonomy::default_embedded();
        let land = taxonomy.topic("land").unwrap();
        assert!(land.matches("Đề nghị GIẢI PHÓNG MẶT BẰNG đúng hạn"));
        assert!(land.matches("de nghi giai phong mat bang dung han"));
        assert!(land.matches("Chưa được bồi thường khi thu hồi 200m2 đất"));
        // One phrase of a two-phrase rule is not enough.
        assert!(!land.matches("bồi thường thiệt hại xe máy"));
        // Whole syllables only: "chợ" must not match inside "chong".
        let prices = taxonomy.topic("prices").unwrap();
        assert!(!prices.matches("chong chóng"));
        assert!(prices.matches("Chợ Bến Thành"));
        let codes: Vec<&str> =
            taxonomy.matching("Rác thải bốc mùi hôi gần trường học").iter().map(|t| t.code.as_str()).collect();
        assert_eq!(codes, ["environment", "education"]);
        assert!(taxonomy.matching("").is_empty());
    }

    #[test]
    fn rules_are_queries_in_the_index_language() {
        let rule = Rule::parse(r#""bồi thường" AND (đất OR "giải phóng mặt bằng") -"bảo hiểm""#).unwrap();
        assert!(rule.matches("Chưa được BOI THUONG khi thu hồi đất"));
        assert!(rule.matches("bồi thường giải phóng mặt bằng chậm"));
        assert!(!rule.matches("bồi thường bảo hiểm xe máy trên đất"), "excluded phrase");
        assert!(!rule.matches("bồi thường thiệt hại"), "needs one of the alternatives");
        assert_eq!(rule.phrases, ["bồi thường", "đất", "giải phóng mặt bằng"]);
        // Implied AND, NOT keyword, nested groups.
        let rule = Rule::parse("trường NOT (đường OR chợ) học").unwrap();
        assert!(rule.matches("trường học xuống cấp") && !rule.matches("trường học gần chợ"));
        for bad in ["", "-rác", "NOT (a OR b)", "(rác", "rác)", "\"rác", "title:rác", "rác OR"] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
        // Both forms in one file, and the phrase index agrees with rule-by-rule matching.
        let file = "[[topic]]\ncode = \"a\"\nvi = \"A\"\nen = \"A\"\nrules = [\"rác -\\\"rác thải\\\"\", [\"mùi\", \"hôi\"]]\n";
        let taxonomy = Taxonomy::from_toml_str(file).unwrap();
        for (text, hits) in [("rác ven đường", 1), ("rác thải", 0), ("mùi hôi và rác", 2), ("mùi", 0)] {
            assert_eq!(taxonomy.rule_hits(&folded_syllables(text))[0], hits, "{text}");
            assert_eq!(taxonomy.topics()[0].matches(text), hits > 0, "{text}");
        }
    }

    #[test]
    fn rejects_unknown_keys_duplicates_and_bad_codes() {
        let unknown = "[[topic]]\ncode = \"a\"\nvi = \"A\"\nen = \"A\"\ncolour = \"red\"\n";
        assert!(Taxonomy::from_toml_str(unknown).unwrap_err().to_string().contains("colour"));
        let duplicate =
            "[[topic]]\ncode = \"a\"\nvi = \"A\"\nen = \"A\"\n[[topic]]\ncode = \"a\"\nvi = \"B\"\nen = \"B\"\n";
        assert!(Taxonomy::from_toml_str(duplicate).unwrap_err().to_string().contains("duplicate topic code `a`"));
        let bad_code = "[[topic]]\ncode = \"Đất\"\nvi = \"A\"\nen = \"A\"\n";
        assert!(Taxonomy::from_toml_str(bad_code).is_err());
        let empty_rule = "[[topic]]\ncode = \"a\"\nvi = \"A\"\nen = \"A\"\nrules = [[]]\n";
        assert!(Taxonomy::from_toml_str(empty_rule).unwrap_err().to_string().contains("empty rule"));
        let blank_phrase = "[[topic]]\ncode = \"a\"\nvi = \"A\"\nen = \"A\"\nrules = [[\" - \"]]\n";
        assert!(Taxonomy::from_toml_str(blank_phrase).is_err());
        assert!(Taxonomy::from_toml_str("").is_err());
    }
}
