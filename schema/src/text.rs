//! Vietnamese text normalisation shared by intake, the index and reference-data look-ups.
//!
//! Three views of a text, each for one purpose:
//! - [`nfc`]: what is stored. Citizens' words are kept as written, only composed to Unicode NFC
//!   so that one letter has one encoding.
//! - [`canonical`]: what is compared. NFC, with each syllable's tone mark moved to one fixed
//!   vowel, so "Hoà" and "Hòa" (both in use, and both in the official unit lists) are equal.
//! - [`fold`]: what is matched loosely. Every diacritic removed and `đ` -> `d`, so a query typed
//!   without Vietnamese keyboard ("dat dai") finds "đất đai".

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The five tone marks as combining characters (huyền, sắc, hỏi, ngã, nặng).
const TONE_MARKS: [char; 5] = ['\u{0300}', '\u{0301}', '\u{0309}', '\u{0303}', '\u{0323}'];

/// Composes `text` to Unicode NFC.
pub fn nfc(text: &str) -> String {
    // Text typed on a Vietnamese keyboard is almost always composed already: a text of
    // starters that NFC keeps as they are is NFC as it stands. Otherwise the quick check decides.
    if stable_starters_only(text)
        || unicode_normalization::is_nfc_quick(text.chars()) == unicode_normalization::IsNormalized::Yes
    {
        return text.to_owned();
    }
    text.nfc().collect()
}

/// True when every character of `text` is a starter (canonical combining class 0) that NFC keeps
/// as it is (quick check Yes). Such a text is NFC, in any order of its characters: only a
/// combining mark, or a character NFC may compose with the one before, can change it.
///
/// Characters below U+0300 and in U+1E00..=U+1EFF (every precomposed Vietnamese vowel) are such
/// starters, recognised from their bytes ([`composed_prefix_len`]). The others, such as the
/// typographic quotes, dashes and ellipses of pasted text (in about one sentence in twenty of
/// the news sample), are looked up one at a time, so that one of them does not send the whole
/// text through the quick check.
fn stable_starters_only(text: &str) -> bool {
    use unicode_normalization::char::canonical_combining_class;
    use unicode_normalization::{IsNormalized, is_nfc_quick};
    let mut rest = text;
    loop {
        let at = composed_prefix_len(rest);
        let mut chars = rest[at..].chars();
        let Some(ch) = chars.next() else {
            return true;
        };
        if canonical_combining_class(ch) != 0 || is_nfc_quick(std::iter::once(ch)) != IsNormalized::Yes {
            return false;
        }
        rest = chars.as_str();
    }
}

/// True when every character of `text` is below U+0300 or in U+1E00..=U+1EFF.
#[cfg(test)]
fn only_composed_ranges(text: &str) -> bool {
    composed_prefix_len(text) == text.len()
}

/// The length of the longest prefix of `text` whose characters are below U+0300 or in
/// U+1E00..=U+1EFF, read from the UTF-8 bytes without decoding: such characters start with a
/// byte below 0xCC (ASCII, or the lead byte of U+0080..U+02FF; continuation bytes are below
/// 0xC0 too), or with 0xE1 followed by 0xB8..=0xBB (U+1E00..U+1EFF). Every other lead byte is
/// a character outside both ranges. The prefix ends on a character boundary: a byte of 0xCC or
/// more is never a continuation byte.
fn composed_prefix_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // Blocks of 16 bytes below 0xCC (ASCII and two-byte letters: runs of plain text) are
        // passed at once; the compiler turns the test into vector compares.
        if let Some(block) = bytes.get(at..at + 16).and_then(|block| <&[u8; 16]>::try_from(block).ok())
            && block.iter().fold(0, |max, &byte| max.max(byte)) < 0xCC
        {
            at += 16;
            continue;
        }
        // Otherwise the next 16 bytes one character at a time.
        let stop = (at + 16).min(bytes.len());
        while at < stop {
            let byte = bytes[at];
            if byte < 0xCC {
                at += 1;
            } else if byte == 0xE1 && matches!(bytes.get(at + 1), Some(0xB8..=0xBB)) {
                at += 3;
            } else {
                return at;
            }
        }
    }
    bytes.len()
}

/// Removes every diacritic and maps `đ`/`Đ` to `d`/`D`. Case is kept.
pub fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for ch in text.chars() {
        push_folded(ch, &mut folded);
    }
    folded
}

/// Appends the folded form of one character (see [`fold`]); the index's token filter uses this to
/// fold token by token without allocating per token.
pub fn push_folded(ch: char, out: &mut String) {
    if ch.is_ascii() {
        out.push(ch);
        return;
    }
    // Latin letters with diacritics, every Vietnamese one included, fold to one ASCII letter:
    // answered from a table built once instead of decomposing each time.
    if let Some(offset) = latin_offset(ch)
        && let Some(folded) = latin_fold_table()[offset]
    {
        out.push(folded);
        return;
    }
    push_folded_slow(ch, out);
}

/// The folded form of `ch` when it is one ASCII character (ASCII itself, every Vietnamese letter
/// and most Latin letters with diacritics); `None` otherwise (see [`push_folded`]).
pub fn fold_to_ascii(ch: char) -> Option<u8> {
    if ch.is_ascii() {
        return Some(ch as u8);
    }
    let folded = latin_fold_table()[latin_offset(ch)?]?;
    Some(folded as u8)
}

fn push_folded_slow(ch: char, out: &mut String) {
    match ch {
        'đ' => out.push('d'),
        'Đ' => out.push('D'),
        _ => {
            for decomposed in std::iter::once(ch).nfd() {
                if !is_combining_mark(decomposed) {
                    out.push(decomposed);
                }
            }
        }
    }
}

/// Latin-1 Supplement and Latin Extended-A/B (U+00C0..U+024F), then Latin Extended Additional
/// (U+1E00..U+1EFF), as one index range.
const LATIN_LOW: std::ops::RangeInclusive<u32> = 0x00C0..=0x024F;
const LATIN_HIGH: std::ops::RangeInclusive<u32> = 0x1E00..=0x1EFF;

fn latin_offset(ch: char) -> Option<usize> {
    let code = ch as u32;
    if LATIN_LOW.contains(&code) {
        Some((code - LATIN_LOW.start()) as usize)
    } else if LATIN_HIGH.contains(&code) {
        Some((code - LATIN_HIGH.start()) as usize + LATIN_LOW.clone().count())
    } else {
        None
    }
}

/// For each character of the Latin ranges: its folded form when that is a single ASCII letter.
fn latin_fold_table() -> &'static [Option<char>] {
    static TABLE: std::sync::OnceLock<Vec<Option<char>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        LATIN_LOW
            .chain(LATIN_HIGH)
            .map(|code| {
                let ch = char::from_u32(code)?;
                let mut folded = String::new();
                push_folded_slow(ch, &mut folded);
                let mut chars = folded.chars();
                match (chars.next(), chars.next()) {
                    (Some(single), None) if single.is_ascii() => Some(single),
                    _ => None,
                }
            })
            .collect()
    })
}

/// The byte ranges `(from, to)` of the runs of a text between ASCII bytes that are neither letters
/// nor digits (spaces, punctuation, control characters), in order; empty runs are skipped.
///
/// Such a byte is a whole character in UTF-8 and splits a syllable in every view of the text
/// (folded, exact, the topic rules' syllables), so the analysers split at these bytes first, 64
/// bytes at a time, and look at the characters of a run only when they need to: a run then holds
/// one syllable in all but rare cases (a non-ASCII punctuation mark or symbol inside it).
#[derive(Debug, Clone)]
pub struct WordRuns<'a> {
    bytes: &'a [u8],
    /// Where the block of `word` starts.
    base: usize,
    /// Bit i set: byte `base + i` belongs to a run. Bits past the end stay clear.
    word: u64,
    /// The next bit to look at in `word` (64: the block is done).
    bit: u32,
    in_run: bool,
    start: usize,
}

impl<'a> WordRuns<'a> {
    pub fn new(text: &'a str) -> WordRuns<'a> {
        let bytes = text.as_bytes();
        let word = word_byte_mask(&bytes[..bytes.len().min(64)]);
        WordRuns { bytes, base: 0, word, bit: 0, in_run: false, start: 0 }
    }
}

impl Iterator for WordRuns<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        loop {
            if self.bit < 64 {
                // The next byte from `bit` on where a run starts (or, inside one, ends).
                let flips = if self.in_run { !self.word } else { self.word } >> self.bit;
                if flips != 0 {
                    self.bit += flips.trailing_zeros();
                    let at = self.base + self.bit as usize;
                    self.in_run = !self.in_run;
                    if self.in_run {
                        self.start = at;
                        continue;
                    }
                    return Some((self.start, at));
                }
            }
            self.base += 64;
            if self.base >= self.bytes.len() {
                self.bit = 64;
                self.base = self.bytes.len();
                if self.in_run {
                    self.in_run = false;
                    return Some((self.start, self.bytes.len()));
                }
                return None;
            }
            self.word = word_byte_mask(&self.bytes[self.base..(self.base + 64).min(self.bytes.len())]);
            self.bit = 0;
        }
    }
}

/// Bit i set when `block[i]` (at most 64 bytes) is an ASCII letter or digit or any byte of a
/// non-ASCII character.
fn word_byte_mask(block: &[u8]) -> u64 {
    let mut padded = [0u8; 64];
    let block: &[u8; 64] = match block.try_into() {
        Ok(whole) => whole,
        Err(_) => {
            // NUL is a separator, so the padding adds no run.
            padded[..block.len()].copy_from_slice(block);
            &padded
        }
    };
    let mut mask = 0;
    for (part, bytes) in block.chunks_exact(8).enumerate() {
        let eight = u64::from_le_bytes(bytes.try_into().expect("chunks of 8"));
        mask |= word_byte_bits(eight) << (part * 8);
    }
    mask
}

/// [`word_byte_mask`] of 8 bytes at once (SWAR: each byte's test lands in its own high bit, with
/// no borrow across bytes), packed into the low 8 bits.
fn word_byte_bits(eight: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // With the high bit set on each 7-bit byte, subtracting at most 0x7F borrows from no
    // neighbour, and the high bit stays set exactly when the byte was at least `low`.
    let at_least = |seven: u64, low: u8| (seven | HIGH).wrapping_sub(ONES * u64::from(low)) & HIGH;
    let seven = eight & !HIGH;
    let digit = at_least(seven, b'0') & !at_least(seven, b'9' + 1);
    let lower = seven | (ONES * 0x20);
    let letter = at_least(lower, b'a') & !at_least(lower, b'z' + 1);
    // Non-ASCII bytes (high bit set) belong to a character that is no ASCII separator.
    let word = (eight & HIGH) | digit | letter;
    // Gather the eight high bits into the low byte: bit 8i + 7 moves to bit 56 + i, and no two
    // partial products meet, so nothing carries.
    ((word >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Characters that take no room when shown: zero-width spaces and joiners, the word joiner and
/// its kin, the byte-order mark, the soft hyphen and the Mongolian vowel separator. A text made
/// of these and white space looks empty to whoever reads it.
pub fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// True when `text` shows nothing: only white space and [`is_invisible`] characters.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|ch| ch.is_whitespace() || is_invisible(ch))
}

/// The first control character of `text` that a citizen's text has no use for: any, or with
/// `lines` any but line breaks and tabs. NUL, escape sequences and the like only garble what
/// staff read and what exports write.
pub fn stray_control(text: &str, lines: bool) -> Option<char> {
    // Every control character is U+0000-U+001F, U+007F (one byte each, never inside a longer
    // sequence) or U+0080-U+009F (0xC2 then 0x80-0x9F), so the bytes are tested, not the
    // characters: intake checks each petition's body on its way in.
    // Most texts hold none of those bytes (only the line breaks of a body): blocks of 32 bytes are
    // tested without branches first, and only a block that holds one is looked at byte by byte.
    const BLOCK: usize = 32;
    let bytes = text.as_bytes();
    let suspect = |byte: u8| byte < 0x20 || byte == 0x7F || byte == 0xC2;
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + BLOCK).min(bytes.len());
        if bytes[start..end].iter().fold(false, |seen, &byte| seen | suspect(byte)) {
            let found = (start..end).find(|&i| match bytes[i] {
                b'\n' | b'\r' | b'\t' => !lines,
                0x00..=0x1F | 0x7F => true,
                0xC2 => bytes.get(i + 1).is_some_and(|next| (0x80..=0x9F).contains(next)),
                _ => false,
            });
            if let Some(at) = found {
                return text[at..].chars().next();
            }
        }
        start = end;
    }
    None
}

/// True when folding would change `text` (it carries Vietnamese diacritics or `đ`).
pub fn has_diacritics(text: &str) -> bool {
    text.chars().any(|ch| {
        !ch.is_ascii() && {
            let mut folded = String::new();
            push_folded(ch, &mut folded);
            folded.len() != ch.len_utf8() || !folded.starts_with(ch)
        }
    })
}

/// NFC with canonical tone-mark placement in every syllable, for comparisons.
///
/// The rule (the "new style" taught in schools since the 1980s and used by most official lists):
/// the tone sits on the vowel carrying a quality mark (ă â ê ô ơ ư; on ơ in ươ); otherwise on the
/// last vowel when a consonant closes the syllable or the nucleus is `oa`, `oe`, `uy`; otherwise on
/// the middle of three vowels or the first of two. `gi` and `qu` count as onsets.
pub fn canonical(text: &str) -> String {
    let decomposed: Vec<char> = text.nfd().collect();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    while start < decomposed.len() {
        let is_word = |c: &char| c.is_alphabetic() || is_combining_mark(*c);
        if !is_word(&decomposed[start]) {
            out.push(decomposed[start]);
            start += 1;
            continue;
        }
        let mut end = start;
        while end < decomposed.len() && is_word(&decomposed[end]) {
            end += 1;
        }
        place_tone(&decomposed[start..end], &mut out);
        start = end;
    }
    out.nfc().collect()
}

/// Lower-cased [`canonical`] form: two names are the same name when their keys are equal.
pub fn compare_key(text: &str) -> String {
    canonical(text.trim()).to_lowercase().replace('’', "'")
}

/// One syllable in NFD: base letters, each optionally followed by combining marks.
fn place_tone(syllable: &[char], out: &mut String) {
    if syllable.iter().filter(|ch| TONE_MARKS.contains(ch)).count() != 1 {
        // No tone, or several (not a Vietnamese syllable): nothing to move.
        out.extend(syllable.iter());
        return;
    }
    // Split into letters with their marks, pulling the tone mark out.
    let mut letters: Vec<(char, Vec<char>)> = Vec::with_capacity(syllable.len());
    let mut tone: Option<char> = None;
    for &ch in syllable {
        if TONE_MARKS.contains(&ch) && tone.is_none() && !letters.is_empty() {
            tone = Some(ch);
        } else if is_combining_mark(ch) {
            match letters.last_mut() {
                Some((_, marks)) => marks.push(ch),
                None => letters.push((ch, Vec::new())),
            }
        } else {
            letters.push((ch, Vec::new()));
        }
    }
    let target = tone.and_then(|_| tone_target(&letters));
    for (index, (base, marks)) in letters.iter().enumerate() {
        out.push(*base);
        out.extend(marks.iter());
        if Some(index) == target {
            out.push(tone.expect("target is only set with a tone"));
        }
    }
    if let (Some(tone), None) = (tone, target) {
        // Not a Vietnamese syllable we understand: keep the mark rather than lose it.
        out.push(tone);
    }
}

fn is_vowel(base: char) -> bool {
    matches!(base.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// Index of the letter that carries the tone, or `None` when the syllable has no vowel.
fn tone_target(letters: &[(char, Vec<char>)]) -> Option<usize> {
    let lower = |i: usize| letters[i].0.to_ascii_lowercase();
    let mut first = letters.iter().position(|(base, _)| is_vowel(*base))?;
    // `qu` and `gi` (before another vowel) are onsets: their u / i is not part of the nucleus.
    if first > 0 && lower(first - 1) == 'q' && lower(first) == 'u' {
        first += 1;
    } else if first > 0
        && lower(first - 1) == 'g'
        && lower(first) == 'i'
        && letters.get(first + 1).is_some_and(|(b, _)| is_vowel(*b))
    {
        first += 1;
    }
    let mut last = first;
    while last + 1 < letters.len() && is_vowel(letters[last + 1].0) {
        last += 1;
    }
    if first >= letters.len() || !is_vowel(letters[first].0) {
        // "qu" or "gi" alone ("gì"): the tone sits on the i / u itself.
        return letters.iter().rposition(|(base, _)| is_vowel(*base));
    }
    let nucleus = first..=last;
    // A vowel with a quality mark (breve, circumflex, horn) takes the tone; in ươ the ơ does.
    let marked: Vec<usize> = nucleus.clone().filter(|&i| !letters[i].1.is_empty()).collect();
    if let Some(&last_marked) = marked.last() {
        return Some(last_marked);
    }
    let closed = last + 1 < letters.len();
    let length = last - first + 1;
    if closed {
        return Some(last);
    }
    match length {
        1 => Some(first),
        2 => {
            let pair = (lower(first), lower(last));
            if matches!(pair, ('o', 'a') | ('o', 'e') | ('u', 'y')) { Some(last) } else { Some(first) }
        }
        _ => Some(first + 1),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    proptest::proptest! {
        #[test]
        fn the_control_character_scan_agrees_with_the_characters(
            text in "([a-z \t\r\nĐđăơư\u{0}\u{1b}\u{7f}\u{80}\u{9f}\u{a0}\u{c2}\u{200b}]|\\PC|\\p{Cc}){0,40}",
            lines: bool,
        ) {
            let expected = text.chars().find(|&ch| ch.is_control() && !(lines && matches!(ch, '\n' | '\r' | '\t')));
            proptest::prop_assert_eq!(stray_control(&text, lines), expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn the_byte_scan_agrees_with_the_character_ranges(
            text in "([a-z .,Đđăâêôơưáàảãạếềểễệốồổỗộớờởỡợứừửữựíìỉĩịýỳỷỹỵ\u{0300}\u{0301}]|\\PC){0,60}"
        ) {
            let expected = text.chars().all(|ch| ch < '\u{0300}' || ('\u{1E00}'..='\u{1EFF}').contains(&ch));
            proptest::prop_assert_eq!(only_composed_ranges(&text), expected);
        }
    }

    proptest::proptest! {
        #[test]
        fn stable_starters_are_recognised_one_character_at_a_time(
            text in "([a-z .,Đđăâơư“”–…’\u{2000}\u{2126}\u{212B}\u{0300}\u{0301}\u{0CD5}\u{1161}]|\\PC){0,60}"
        ) {
            use unicode_normalization::char::canonical_combining_class;
            use unicode_normalization::{IsNormalized, is_nfc_quick};
            let expected = text.chars().all(|ch| {
                canonical_combining_class(ch) == 0 && is_nfc_quick(std::iter::once(ch)) == IsNormalized::Yes
            });
            proptest::prop_assert_eq!(stable_starters_only(&text), expected);
            if expected {
                proptest::prop_assert_eq!(nfc(&text), text.nfc().collect::<String>());
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn word_runs_are_the_runs_between_ascii_separators(
            text in "([a-zA-Z0-9 .,;\\-_@~]|\\PC|[Đđăâơư“”–…]){0,200}"
        ) {
            let mut expected = Vec::new();
            let mut start = None;
            for (offset, byte) in text.bytes().enumerate().chain([(text.len(), b' ')]) {
                let word = offset < text.len() && (!byte.is_ascii() || byte.is_ascii_alphanumeric());
                match (word, start) {
                    (true, None) => start = Some(offset),
                    (false, Some(from)) => {
                        expected.push((from, offset));
                        start = None;
                    }
                    _ => {}
                }
            }
            let got: Vec<(usize, usize)> = WordRuns::new(&text).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn the_fold_table_agrees_with_decomposition() {
        for code in LATIN_LOW.chain(LATIN_HIGH).chain(0x300..0x400) {
            let Some(ch) = char::from_u32(code) else { continue };
            let (mut fast, mut slow) = (String::new(), String::new());
            push_folded(ch, &mut fast);
            push_folded_slow(ch, &mut slow);
            assert_eq!(fast, slow, "{ch:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_byte_test_of_composed_ranges_agrees_with_the_char_test(text in "([a-z ]|\\PC|[\u{0300}-\u{036F}\u{1E00}-\u{1EFF}\u{00C0}-\u{02FF}]){0,40}") {
            let composed = |ch: char| ch < '\u{0300}' || ('\u{1E00}'..='\u{1EFF}').contains(&ch);
            proptest::prop_assert_eq!(only_composed_ranges(&text), text.chars().all(composed));
        }

        #[test]
        fn nfc_shortcut_agrees_with_full_normalisation(
            text in "[a-zA-Z àáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ\u{0300}\u{0301}\u{0303}\u{0309}\u{0323}\u{0302}\u{0306}\u{031B}ΩÅ\u{212B}\u{2000}]{0,40}"
        ) {
            proptest::prop_assert_eq!(nfc(&text), text.nfc().collect::<String>());
        }
    }

    #[test]
    fn fold_removes_all_diacritics() {
        assert_eq!(fold("Đất đai Hoà Bình, GIẢI PHÓNG mặt bằng"), "Dat dai Hoa Binh, GIAI PHONG mat bang");
        assert_eq!(fold("người ước muốn"), "nguoi uoc muon");
    }

    #[test]
    fn tone_placement_variants_compare_equal() {
        assert_eq!(compare_key("Hoà"), compare_key("Hòa"));
        assert_eq!(compare_key("Phường Thuỷ Xuân"), compare_key("Phường Thủy Xuân"));
        assert_eq!(compare_key("xã Hoè Nhai"), compare_key("Xã Hòe Nhai"));
        assert_eq!(compare_key("Ea H’Leo"), compare_key("Ea H'Leo"));
        assert_ne!(compare_key("Hoà"), compare_key("Hóa"));
    }

    #[test]
    fn canonical_keeps_common_words() {
        for word in ["người", "được", "khuyến", "quyền", "giữa", "gì", "tiếng", "hoàng", "của", "mái", "thuở", "khoẻ"]
        {
            assert_eq!(fold(&canonical(word)), fold(word), "{word}");
            assert_eq!(canonical(&canonical(word)), canonical(word), "{word} idempotent");
        }
        assert_eq!(canonical("hoàng"), nfc("hoàng"));
        assert_eq!(canonical("người"), nfc("người"));
        assert_eq!(canonical("quyền"), nfc("quyền"));
        assert_eq!(canonical("giữa"), nfc("giữa"));
        assert_eq!(canonical("của"), nfc("của"));
    }

    #[test]
    fn diacritics_detection() {
        assert!(has_diacritics("đất"));
        assert!(has_diacritics("Hà"));
        assert!(!has_diacritics("dat dai 123"));
    }

    proptest::proptest! {
        #[test]
        fn canonical_is_idempotent_and_only_moves_tones(
            text in "[a-zA-Zàáảãạăằắẳẵặâầấẩẫậđèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵ ,.]{0,40}"
        ) {
            let canon = canonical(&text);
            proptest::prop_assert_eq!(canonical(&canon), canon.clone());
            proptest::prop_assert_eq!(fold(&canon), fold(&text));
        }

        #[test]
        fn normalisers_never_panic(text in "\\PC{0,60}") {
            let _ = canonical(&text);
            let _ = fold(&text);
            let _ = compare_key(&text);
        }
    }
}
