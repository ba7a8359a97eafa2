//! Vietnamese text analysis: how petition text and queries become terms.
//!
//! Vietnamese is written in syllables separated by spaces, so a syllable is the unit of a term and
//! a word of several syllables ("giải phóng mặt bằng") is a phrase. Each text is indexed in two
//! views that share the same split, so positions line up and a phrase works in either view:
//! - [`FOLDED_TOKENIZER`]: lower-cased and folded ([`text::push_folded`]), so "dat dai" typed
//!   without a Vietnamese keyboard finds "đất đai".
//! - [`EXACT_TOKENIZER`]: lower-cased with canonical tone placement ([`text::canonical`]), so
//!   "đất" does not match "dát" and "Hoà" matches "Hòa".
//!
//! Token offsets always point into the original text, which is what the snippet highlighter uses.

use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer, TokenizerManager};
use unicode_normalization::char::is_combining_mark;
use voxpop_schema::short_keys::{MAX_KEY, ShortKeyMap};
use voxpop_schema::text;
use voxpop_schema::text::WordRuns;

/// Name of the folded (diacritic-insensitive) analyser in the index's tokenizer manager.
/// Stored in the index schema: renaming it makes existing indexes unreadable.
pub const FOLDED_TOKENIZER: &str = "vi_folded";
/// Name of the exact (diacritic-sensitive, tone-placement-insensitive) analyser. Stored in the
/// index schema like [`FOLDED_TOKENIZER`].
pub const EXACT_TOKENIZER: &str = "vi_exact";

/// Longest run kept, in bytes of the original text. A Vietnamese syllable is at most 7 letters;
/// longer runs are URLs, hashes or junk whose terms would only bloat the dictionary (and tantivy
/// rejects terms near 64 KiB). Checked in the tokenizer rather than with tantivy's
/// `RemoveLongFilter`, which measures the normalised term and so would drop a run from one view
/// but not the other.
const MAX_TERM_BYTES: usize = 80;

/// Syllables whose normalised form a tokenizer remembers. Vietnamese has about 7,000 distinct
/// syllables (more with case variants), so a tokenizer that has seen a few documents rarely
/// normalises again; the bound only stops junk from growing the cache without limit.
const CACHE_CAPACITY: usize = 1 << 16;

/// Which view of the text a [`VietnameseTokenizer`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Lower case, every diacritic removed, `đ` -> `d`.
    Folded,
    /// Lower case, NFC with canonical tone placement.
    Exact,
}

/// Splits on every character that is neither alphanumeric nor a combining mark (so text in NFD
/// still forms whole syllables), then normalises each syllable for its [`View`].
///
/// Normalising a syllable (lower case, tone placement, NFC or folding) costs more than looking it
/// up, so each tokenizer keeps the forms it has computed. Tantivy clones the
/// analyser for each indexing thread, so the cache is per thread and needs no lock.
#[derive(Debug, Clone)]
pub struct VietnameseTokenizer {
    view: View,
    token: Token,
    cache: FormCache,
}

impl VietnameseTokenizer {
    pub fn new(view: View) -> Self {
        VietnameseTokenizer { view, token: Token::default(), cache: FormCache::new() }
    }
}

/// The forms a tokenizer has computed, by the text they came from. Keys are packed into the table
/// of a [`ShortKeyMap`] (every Vietnamese syllable fits) and the forms kept one after the other in
/// one string, so that a look-up reads the table and one place of `forms` instead of the key's
/// and the value's heap blocks. Texts longer than [`MAX_KEY`] bytes are normalised each time.
#[derive(Debug, Clone)]
struct FormCache {
    /// Where each form is in `forms`: (start, length); length 0 stands for [`SPLIT`].
    slots: ShortKeyMap<(u32, u32)>,
    forms: String,
}

impl FormCache {
    fn new() -> FormCache {
        FormCache { slots: ShortKeyMap::with_max_entries(CACHE_CAPACITY), forms: String::new() }
    }

    /// The form cached for `text[from..to]`.
    fn get(&self, text: &str, from: usize, to: usize) -> Option<&str> {
        let (start, len) = self.slots.get_in(text.as_bytes(), from, to)?;
        Some(&self.forms[start as usize..(start + len) as usize])
    }

    fn remember(&mut self, text: &str, form: &str) {
        if text.len() > MAX_KEY {
            return;
        }
        if self.slots.len() >= CACHE_CAPACITY {
            self.slots.clear();
            self.forms.clear();
        }
        let start = self.forms.len() as u32;
        self.forms.push_str(form);
        self.slots.insert(text.as_bytes(), (start, form.len() as u32));
    }
}

/// The token stream of a [`VietnameseTokenizer`].
pub struct VietnameseTokenStream<'a> {
    text: &'a str,
    runs: WordRuns<'a>,
    /// A run being split character by character: the next byte to look at and the run's end.
    split: Option<(usize, usize)>,
    view: View,
    token: &'a mut Token,
    cache: &'a mut FormCache,
}

impl Tokenizer for VietnameseTokenizer {
    type TokenStream<'a> = VietnameseTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> VietnameseTokenStream<'a> {
        self.token.reset();
        VietnameseTokenStream {
            text,
            runs: WordRuns::new(text),
            split: None,
            view: self.view,
            token: &mut self.token,
            cache: &mut self.cache,
        }
    }
}

fn is_word_char(ch: char) -> bool {
    if ch.is_ascii() {
        return ch.is_ascii_alphanumeric();
    }
    // Every Vietnamese letter is in Latin-1, Latin Extended-A/B or Latin Extended Additional,
    // where all code points but `×` and `÷` are letters: answer those without the Unicode tables.
    matches!(ch, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}') && ch != '×' && ch != '÷'
        || ch.is_alphanumeric()
        || is_combining_mark(ch)
}

/// Cheap pre-check for runs of marks only: a run that starts with a letter is no such run.
fn starts_with_combining_mark(syllable: &str) -> bool {
    syllable.chars().next().is_some_and(|ch| !ch.is_ascii() && is_combining_mark(ch))
}

/// Writes the normalised form of one syllable into `out` (cleared first).
fn normalise_into(view: View, syllable: &str, out: &mut String) {
    out.clear();
    if syllable.is_ascii() {
        // The common case for folded queries, numbers and codes: no Unicode work needed.
        out.push_str(syllable);
        out.make_ascii_lowercase();
        return;
    }
    match view {
        View::Folded => {
            for ch in syllable.chars() {
                for lower in ch.to_lowercase() {
                    text::push_folded(lower, out);
                }
            }
        }
        View::Exact => {
            // Lower-case first: where `canonical` puts the tone does not depend on case, and it
            // ends with NFC, which lower-casing afterwards could undo (e.g. `İ` -> `i` + U+0307).
            let lower = syllable.to_lowercase();
            out.push_str(&text::canonical(&lower));
        }
    }
}

/// Cached for a run that is not one syllable kept as a term (a non-ASCII separator inside it, a
/// run of marks alone, a long run): split it character by character. No term is empty, so this
/// never stands for a syllable's form.
const SPLIT: &str = "";

impl VietnameseTokenStream<'_> {
    /// Points the token, whose text is set, at `text[from..to]`, one position on.
    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }

    /// The next syllable kept as a term inside the run being split, if any: runs of word
    /// characters, minus overlong runs and runs of marks alone (see [`VietnameseTokenStream::advance`]).
    fn next_in_split(&mut self) -> bool {
        while let Some((at, end)) = self.split {
            let mut chars = self.text[at..end].char_indices();
            let Some(from) = chars.by_ref().find(|(_, ch)| is_word_char(*ch)).map(|(offset, _)| at + offset) else {
                self.split = None;
                return false;
            };
            let to = chars.by_ref().find(|(_, ch)| !is_word_char(*ch)).map_or(end, |(offset, _)| at + offset);
            self.split = Some((to, end));
            let syllable = &self.text[from..to];
            // Both checks look at the original text, not at the view's output, so that the
            // folded and the exact view skip the same runs and their positions stay aligned.
            if syllable.len() > MAX_TERM_BYTES
                || starts_with_combining_mark(syllable) && syllable.chars().all(is_combining_mark)
            {
                // A URL, a hash or a stray accent between spaces: nothing worth a term, and it
                // takes no position, so a phrase across it still matches.
                continue;
            }
            self.normalise_cached(from, to);
            return self.emit(from, to);
        }
        false
    }

    /// Writes the normalised form of a syllable into the token, from the cache when this
    /// tokenizer has met it before (ASCII syllables too: one look-up costs less than lower-casing).
    fn normalise_cached(&mut self, from: usize, to: usize) {
        if let Some(normalised) = self.cache.get(self.text, from, to) {
            self.token.text.clear();
            self.token.text.push_str(normalised);
            return;
        }
        self.normalise_and_remember(from, to);
    }

    /// Writes the normalised form of a syllable the cache does not hold into the token, and
    /// remembers it.
    fn normalise_and_remember(&mut self, from: usize, to: usize) {
        let syllable = &self.text[from..to];
        normalise_into(self.view, syllable, &mut self.token.text);
        if self.token.text.is_empty() {
            // Cannot happen for a run with a base letter, but an empty term would shift
            // this view against the other: keep the run as written instead.
            self.token.text.push_str(&syllable.to_lowercase());
        }
        self.cache.remember(syllable, &self.token.text);
    }
}

impl TokenStream for VietnameseTokenStream<'_> {
    /// Splits the text at ASCII separators first ([`WordRuns`]), 64 bytes at a time, and looks each
    /// run up whole in the cache, which holds its form when it is one syllable (almost always) and
    /// [`SPLIT`] when it must be split again at non-ASCII separators, character by character. A
    /// run met for the first time is one syllable when it is ASCII (letters and digits only);
    /// otherwise its characters decide.
    fn advance(&mut self) -> bool {
        loop {
            if self.split.is_some() && self.next_in_split() {
                return true;
            }
            let Some((from, to)) = self.runs.next() else {
                return false;
            };
            let run = &self.text[from..to];
            match self.cache.get(self.text, from, to) {
                Some(form) if !form.is_empty() => {
                    self.token.text.clear();
                    self.token.text.push_str(form);
                    return self.emit(from, to);
                }
                Some(_) => self.split = Some((from, to)),
                None if run.is_ascii() => {
                    if run.len() > MAX_TERM_BYTES {
                        continue;
                    }
                    self.normalise_and_remember(from, to);
                    return self.emit(from, to);
                }
                None => {
                    let one_term = run.len() <= MAX_TERM_BYTES
                        && run.chars().all(is_word_char)
                        && !run.chars().all(is_combining_mark);
                    if one_term {
                        self.normalise_and_remember(from, to);
                        return self.emit(from, to);
                    }
                    self.cache.remember(run, SPLIT);
                    self.split = Some((from, to));
                }
            }
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// The analyser for one view, as registered in the index.
pub fn analyzer(view: View) -> TextAnalyzer {
    TextAnalyzer::from(VietnameseTokenizer::new(view))
}

/// Registers both analysers under their stable names; every opened index needs this before it
/// indexes, parses a query or highlights.
pub fn register(manager: &TokenizerManager) {
    manager.register(FOLDED_TOKENIZER, analyzer(View::Folded));
    manager.register(EXACT_TOKENIZER, analyzer(View::Exact));
}

/// The terms of `text` in one view, in order; for tests and for explaining a query.
pub fn terms(view: View, text: &str) -> Vec<String> {
    let mut analyzer = analyzer(view);
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while let Some(token) = stream.next() {
        terms.push(token.text.clone());
    }
    terms
}

/// How many terms `texts` make in `view`, through one analyser as an indexing thread uses it
/// (its cache warm after the first texts): the tokenizer's share of indexing, for the benchmarks.
pub fn count_terms<'a>(view: View, texts: impl IntoIterator<Item = &'a str>) -> usize {
    let mut analyzer = analyzer(view);
    let mut count = 0;
    for text in texts {
        let mut stream = analyzer.token_stream(text);
        while stream.advance() {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(view: View, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut analyzer = analyzer(view);
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push((token.text.clone(), token.position, token.offset_from, token.offset_to));
        }
        out
    }

    #[test]
    fn folded_view_removes_diacritics_and_keeps_offsets() {
        let text = "Đất đai, GIẢI phóng-mặt bằng!";
        let folded = tokens(View::Folded, text);
        let words: Vec<&str> = folded.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(words, ["dat", "dai", "giai", "phong", "mat", "bang"]);
        for (index, (_, position, from, to)) in folded.iter().enumerate() {
            assert_eq!(*position, index);
            // Offsets slice the original text at syllable boundaries.
            assert_eq!(text::fold(&text[*from..*to]).to_lowercase(), words[index]);
        }
    }

    #[test]
    fn exact_view_keeps_diacritics_and_canonicalises_tones() {
        assert_eq!(terms(View::Exact, "Đất ĐAI"), ["đất", "đai"]);
        assert_eq!(terms(View::Exact, "Hoà"), terms(View::Exact, "Hòa"));
        assert_eq!(terms(View::Exact, "Thuỷ"), terms(View::Exact, "Thủy"));
        assert_ne!(terms(View::Exact, "đất"), terms(View::Exact, "dát"));
    }

    #[test]
    fn decomposed_text_forms_whole_syllables() {
        let decomposed = "Hoa\u{0300} Bi\u{0300}nh";
        assert_eq!(terms(View::Folded, decomposed), ["hoa", "binh"]);
        assert_eq!(terms(View::Exact, decomposed), terms(View::Exact, "Hòa Bình"));
        // A lone combining mark is no token and takes no position.
        assert_eq!(tokens(View::Folded, "a \u{0301} b")[1].1, 1);
    }

    #[test]
    fn drops_overlong_runs() {
        let long = "x".repeat(500);
        assert_eq!(terms(View::Folded, &format!("đường {long} hỏng")), ["duong", "hong"]);
    }

    #[test]
    fn word_char_shortcut_agrees_with_unicode() {
        for ch in ('\u{0}'..='\u{2FFF}').filter(|ch| !ch.is_ascii()) {
            assert_eq!(is_word_char(ch), ch.is_alphanumeric() || is_combining_mark(ch), "{ch:?}");
        }
    }

    #[test]
    fn cached_forms_equal_computed_ones() {
        let text = "Hoà HÒA hòa ĐẤT đai Đất; nhà NHÀ Nhà ở khu phố Quyết thắng QUYẾT";
        let mut analyzer = analyzer(View::Exact);
        let mut first = Vec::new();
        for round in 0..2 {
            let mut stream = analyzer.token_stream(text);
            let mut terms = Vec::new();
            while let Some(token) = stream.next() {
                terms.push(token.text.clone());
            }
            if round == 0 {
                first = terms;
            } else {
                assert_eq!(terms, first);
            }
        }
        assert_eq!(first[..3], ["hoà", "hoà", "hoà"]);
    }

    /// The definition the stream must agree with: runs of word characters, long runs and runs
    /// of marks alone dropped, each run normalised for the view.
    fn reference_terms(view: View, text: &str) -> Vec<(String, usize, usize)> {
        let mut runs = Vec::new();
        let mut start = None;
        for (offset, ch) in text.char_indices().chain([(text.len(), ' ')]) {
            match (is_word_char(ch) && offset < text.len(), start) {
                (true, None) => start = Some(offset),
                (false, Some(from)) => {
                    runs.push((from, offset));
                    start = None;
                }
                _ => {}
            }
        }
        runs.into_iter()
            .filter(|&(from, to)| to - from <= MAX_TERM_BYTES && !text[from..to].chars().all(is_combining_mark))
            .map(|(from, to)| {
                let mut out = String::new();
                normalise_into(view, &text[from..to], &mut out);
                (out, from, to)
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn the_stream_agrees_with_the_definition(
            text in "([a-zA-Z0-9 .,\\-ĐđăâêôơưáàảãạếềểễệốồổỗộớờởỡợứừửữựíìỉĩịýỳỷỹỵÀÁẠ\u{0300}\u{0301}ßæ“”×÷…]|\\PC){0,120}"
        ) {
            for view in [View::Folded, View::Exact] {
                // Twice through one analyser: the second pass reads the cache.
                let mut analyzer = analyzer(view);
                for _ in 0..2 {
                    let mut stream = analyzer.token_stream(&text);
                    let mut got = Vec::new();
                    while let Some(token) = stream.next() {
                        got.push((token.text.clone(), token.offset_from, token.offset_to));
                    }
                    proptest::prop_assert_eq!(&got, &reference_terms(view, &text));
                }
            }
        }

        #[test]
        fn views_align_and_offsets_are_char_boundaries(text in "\\PC{0,80}") {
            let folded = tokens(View::Folded, &text);
            let exact = tokens(View::Exact, &text);
            proptest::prop_assert_eq!(folded.len(), exact.len());
            for ((_, p1, f1, t1), (_, p2, f2, t2)) in folded.iter().zip(&exact) {
                proptest::prop_assert_eq!((p1, f1, t1), (p2, f2, t2));
                proptest::prop_assert!(text.is_char_boundary(*f1) && text.is_char_boundary(*t1));
            }
        }
    }
}
