//! Masking of personal data for readers whose role does not allow it: contact fields, and phone
//! and identity-card numbers and email addresses written inside the text (citizens often put
//! them in the body). The paths that show text to such a reader (search, SQL views, exports,
//! pages, Open311, summaries) call [`mask_text`], most by its older name [`mask_numbers`], so
//! they all hide the same things; text cut to length ([`mask_excerpt`]) also hides what touches
//! the cut, and search refuses such a reader a query that would find what is hidden
//! ([`personal_query`]).

use crate::{Contact, Petition};

/// Fewest digits in a run that is treated as a phone or ID number (Vietnamese mobile numbers
/// have 10 digits, landlines 10-11, ID cards 9 or 12).
const MIN_SENSITIVE_DIGITS: usize = 8;
/// Digits left visible at the end, so staff can still tell two numbers apart.
const VISIBLE_DIGITS: usize = 3;

/// The petition as a reader without access to personal data sees it.
pub fn mask_petition(petition: &Petition) -> Petition {
    let mut masked = petition.clone();
    masked.contact = mask_contact(&petition.contact);
    // A title may be a description cut to length (Open311 before cuts avoided numbers).
    masked.title = mask_excerpt(&petition.title);
    masked.body = mask_text(&petition.body);
    masked
}

pub fn mask_contact(contact: &Contact) -> Contact {
    Contact {
        name: contact.name.as_deref().map(mask_name),
        phone: contact.phone.as_deref().map(mask_text),
        email: contact.email.as_deref().map(mask_email),
    }
}

/// "Nguyễn Văn An" -> "N. V. A.".
fn mask_name(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|word| word.chars().next())
        .map(|initial| format!("{initial}."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// "an.nguyen@example.vn" -> "a***@example.vn".
fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".to_owned(),
    }
}

/// A phone written in a field of its own, as a reader without personal data sees it: every
/// digit but the last three hidden, whatever the separators ("0912  345 678" too, which
/// [`mask_text`] would read as two short runs). Phones are personal data as a whole, so unlike
/// free text no run length or amount shape is needed to decide.
pub fn mask_phone(phone: &str) -> String {
    let digits = phone.chars().filter(|&ch| is_digit(ch)).count();
    let mut seen = 0;
    phone
        .chars()
        .map(|ch| {
            if is_digit(ch) {
                seen += 1;
                if seen + VISIBLE_DIGITS > digits { ch } else { '*' }
            } else {
                ch
            }
        })
        .collect()
}

/// [`mask_text`] under the name its callers across the crates know it by: it masks email
/// addresses as well as numbers.
pub fn mask_numbers(text: &str) -> String {
    mask_text(text)
}

/// Free text (titles, bodies, notes, answers, search snippets) as a reader without personal data
/// sees it: in every run of at least 8 digits all but the last three digits become `*`, and every
/// email address is reduced like the contact email ("bi.nguyen@example.com" -> "b***@example.com").
///
/// A run is digit groups joined by single spaces, dots, dashes, slashes, underscores or commas
/// ("0912 345 678", "0912/345/678", "001.203.004.567"); full-width digits ("０９１２...") count as
/// digits. Left readable: amounts of money ("12.500.000", "1,000,000", "1.200.000.000 đồng": a
/// first group of 1-3 digits not starting with 0, then groups of three), dates ("12/03/2021") and
/// spans of years ("2024-2025"). A leading `+` makes a run a phone whatever its shape
/// ("+84.912.345.678"), and "84.987.654.321" (84, then a mobile number) is a phone unless a
/// currency follows it ("84.987.654.321 đồng").
///
/// Personal names written in the text are left as they are: they cannot be found reliably.
/// Nothing tells the person "Nguyễn Văn An" from "Trần Hưng Đạo" street or "Hoà Bình" ward
/// without a list of every name, and guessing would garble the matter the citizen describes.
///
/// Search snippets mark matches with `<mark>` and `</mark>`; those tags are looked through, so
/// "<mark>0912</mark> 345 678" is still one number and keeps its tags. Text cut to length needs
/// [`mask_excerpt`] as well.
pub fn mask_text(text: &str) -> String {
    let mut spans = Vec::new();
    personal_data_spans(text, &mut spans);
    if spans.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for span in &spans {
        out.push_str(&text[cursor..span.range.start]);
        match span.kind {
            PersonalKind::Number => mask_digits_into(&text[span.range.clone()], &mut out),
            PersonalKind::Email { at } => {
                mask_local_part_into(&text[span.range.start..at], &mut out);
                out.push_str(&text[at..span.range.end]);
            }
        }
        cursor = span.range.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// Marks text cut off before or after an excerpt (search snippets, cut titles).
const ELLIPSIS: &str = "…";

/// An excerpt cut out of a longer text (a search snippet, a title cut to length), as a reader
/// without personal data sees it: [`mask_text`], and, where `…` says the text was cut, whatever
/// touches the cut that could be the rest of a number or an address. A phone cut to "0912 345…"
/// holds 7 digits and an address cut to "an.nguyen@example…" has no domain, so the text masking
/// alone would show them. At a cut start, a digit run keeps only its last three digits (as the
/// whole number would); at a cut end it keeps none, and a word that could be an address (with an
/// `@`, or with `.`, `_`, `%` or `+` inside it) keeps only its first letter ("a***@example…").
/// Snippet tags are looked through and kept.
pub fn mask_excerpt(excerpt: &str) -> String {
    let masked = mask_text(excerpt);
    let cut_start = masked.starts_with(ELLIPSIS);
    let cut_end = masked.len() > ELLIPSIS.len() && masked.ends_with(ELLIPSIS);
    if !cut_start && !cut_end {
        return masked;
    }
    let from = if cut_start { ELLIPSIS.len() } else { 0 };
    let to = if cut_end { masked.len() - ELLIPSIS.len() } else { masked.len() };
    if from >= to {
        return masked;
    }
    let mut inner = hide_digits_at_cuts(&masked[from..to], cut_start, cut_end);
    if cut_end && let Some(hidden) = hide_address_at_end(&inner) {
        inner = hidden;
    }
    format!("{}{inner}{}", &masked[..from], &masked[to..])
}

/// A digit as [`digit_len`] sees it, or a `*` that masking put in place of one.
fn digit_or_star(bytes: &[u8], i: usize) -> usize {
    if bytes[i] == b'*' { 1 } else { digit_len(bytes, i) }
}

/// The first position at or after `k` that is not a snippet tag.
fn skip_tags(bytes: &[u8], mut k: usize) -> usize {
    while let Some(len) = tag_at(&bytes[k..]) {
        k += len;
    }
    k
}

/// `text` with the digit runs touching a cut edge masked (see [`mask_excerpt`]).
fn hide_digits_at_cuts(text: &str, cut_start: bool, cut_end: bool) -> String {
    let bytes = text.as_bytes();
    let (mut first, mut last) = (None, None);
    let mut i = 0;
    while i < bytes.len() {
        if digit_or_star(bytes, i) == 0 {
            i += 1;
            continue;
        }
        let (end, _) = number_run(bytes, i, bytes.len(), digit_or_star);
        if first.is_none() {
            first = Some(i..end);
        }
        last = Some(i..end);
        i = end;
    }
    // A run touches a cut when only snippet tags and at most one separator lie between them
    // ("0912." cut before "345").
    let past_separator = |k: usize| match bytes.get(k) {
        Some(byte) if GROUP_SEPARATORS.contains(byte) => skip_tags(bytes, k + 1),
        _ => k,
    };
    let at_start = first.filter(|run| cut_start && run.start == past_separator(skip_tags(bytes, 0)));
    let at_end = last.filter(|run| cut_end && past_separator(skip_tags(bytes, run.end)) == bytes.len());
    if at_start.is_none() && at_end.is_none() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    let runs = match (at_start, at_end) {
        (Some(start), Some(end)) if start == end => vec![(start, 0)],
        (start, end) => start.map(|run| (run, VISIBLE_DIGITS)).into_iter().chain(end.map(|run| (run, 0))).collect(),
    };
    for (run, visible) in runs {
        out.push_str(&text[cursor..run.start]);
        let positions = text[run.clone()].chars().filter(|&ch| ch == '*' || is_digit(ch)).count();
        let mut seen = 0;
        for ch in text[run.clone()].chars() {
            if ch == '*' || is_digit(ch) {
                seen += 1;
                out.push(if seen + visible > positions { ch } else { '*' });
            } else {
                out.push(ch);
            }
        }
        cursor = run.end;
    }
    out.push_str(&text[cursor..]);
    out
}

/// `text` with the address-like word touching its end reduced to its first letter, or `None`
/// when the word there cannot be (part of) an address.
fn hide_address_at_end(text: &str) -> Option<String> {
    let mut start = text.len();
    loop {
        let before = &text[..start];
        if let Some(tag) = MARK_TAGS.iter().find(|tag| before.ends_with(*tag)) {
            start -= tag.len();
            continue;
        }
        let Some(ch) = before.chars().next_back() else { break };
        let address = if ch.is_ascii() {
            ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '%' | '+' | '-' | '@' | '*')
        } else {
            is_word_char(ch)
        };
        if !address {
            break;
        }
        start -= ch.len_utf8();
    }
    // Leading punctuation belongs to the sentence.
    start += text[start..].find(|ch: char| ch.is_alphanumeric() || ch == '<' || ch == '*')?;
    let word = &text[start..];
    let local_end = match word.find('@') {
        Some(at) => at,
        None if looks_like_local_part(word) => word.len(),
        None => return None,
    };
    if !word[..local_end].contains(|ch: char| ch.is_alphanumeric() || ch == '*') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    mask_local_part_into(&word[..local_end], &mut out);
    out.push_str(&word[local_end..]);
    Some(out)
}

/// A word with `.`, `_`, `%` or `+` between letters or digits ("nguyen.van.a"), as the local
/// part of an address cut before its `@` would be; snippet tags looked through.
fn looks_like_local_part(word: &str) -> bool {
    let mut plain = String::with_capacity(word.len());
    let mut rest = word;
    while !rest.is_empty() {
        if let Some(tag) = MARK_TAGS.iter().find(|tag| rest.starts_with(*tag)) {
            rest = &rest[tag.len()..];
            continue;
        }
        let ch = rest.chars().next().expect("not empty");
        plain.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    let chars: Vec<char> = plain.chars().collect();
    chars.windows(3).any(|w| w[0].is_alphanumeric() && matches!(w[1], '.' | '_' | '%' | '+') && w[2].is_alphanumeric())
}

/// A register's person id as a reader without personal data sees it. A national ID number is
/// often used as the id, written in any way ("079200009999", "079.200.009.999", "079 200 009
/// 999"): an id with 8 digits or more has all but its last three hidden whatever its separators,
/// as a phone field is ([`mask_phone`]), and an address in it is masked as in the text. A unit's
/// own numbering ("BD-001", "HV-12345") stays readable. The SQL view `register_entries` masks
/// with this same function.
pub fn mask_person_id(id: &str) -> String {
    let masked = if id.contains('@') { mask_text(id) } else { id.to_owned() };
    if count_digits(masked.as_bytes()) >= MIN_SENSITIVE_DIGITS { mask_phone(&masked) } else { masked }
}

/// Why a search query is refused to a reader without personal data ([`personal_query`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalQuery {
    /// The query holds an email address, or the start of one ("an@").
    Email,
    /// The query holds a phone or ID number, as [`personal_data_spans`] finds them.
    Number,
    /// The query's digits could be the hidden part of a phone or ID number written in groups
    /// ("0912", "0912 345", `"345 678"`).
    NumberPart,
}

/// Fewest digits, over the groups of a query that are not amounts, dates or years, that could
/// single out a phone written in groups ("345 678": the middle and last groups of "0912 345 678").
const MIN_QUERY_DIGITS: usize = 6;

/// Whether searching `q` could tell a reader without personal data what the masking hides. The
/// index holds the text unmasked, so a query matching hidden digits is an oracle: its count, the
/// hits' ids, communes and dates say who wrote that phone number, even with every snippet masked.
///
/// Refused: what [`mask_text`] masks (a phone or ID number of 8 digits or more, an email address),
/// a word with an `@` after something (the start of an address); and digits that only a hidden
/// number is likely to match: a group of 3 digits or more starting with 0 ("0912", "001203"), a
/// group after `+` with other groups ("+84 912"), or groups holding 6 digits or more together
/// ("345 678", "912 345", "345 nhà 678": the query's words all must match, near or not).
/// Amounts ("500.000 đồng", "1.200.000.000"), dates ("12/03/2021"), years ("năm 2025") and
/// smaller numbers ("QL 279", "quốc lộ 1A", "tổ 12") are searched as usual: one short group
/// matches too many texts to single anyone out.
pub fn personal_query(q: &str) -> Option<PersonalQuery> {
    let mut spans = Vec::new();
    personal_data_spans(q, &mut spans);
    if let Some(span) = spans.first() {
        return Some(match span.kind {
            PersonalKind::Number => PersonalQuery::Number,
            PersonalKind::Email { .. } => PersonalQuery::Email,
        });
    }
    let address_start =
        |word: &str| word.split_once('@').is_some_and(|(local, _)| local.contains(char::is_alphanumeric));
    if q.split_whitespace().any(address_start) {
        return Some(PersonalQuery::Email);
    }
    let bytes = q.as_bytes();
    let (mut plain_digits, mut plain_groups, mut after_plus) = (0, 0, false);
    let mut i = 0;
    while i < bytes.len() {
        if digit_len(bytes, i) == 0 {
            i += 1;
            continue;
        }
        let (end, _) = number_run(bytes, i, bytes.len(), digit_len);
        let groups = Groups::of(&bytes[i..end]);
        let round = groups.groups.last().is_some_and(|&(len, _, value)| len == 3 && value == 0);
        let amount = groups.is_amount() && (round || currency_follows(&q[end..]));
        let year = matches!(groups.groups[..], [(4, _, 1900..=2099)]);
        if !(amount || groups.is_date() || year) {
            if groups.groups.iter().any(|&(len, first, _)| len >= 3 && first == 0) {
                return Some(PersonalQuery::NumberPart);
            }
            after_plus |= q[..i].ends_with('+');
            plain_groups += groups.groups.len();
            plain_digits += groups.digits();
        }
        i = end;
    }
    let refused = plain_digits >= MIN_QUERY_DIGITS || (after_plus && plain_groups >= 2);
    refused.then_some(PersonalQuery::NumberPart)
}

/// What a [`PersonalSpan`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalKind {
    /// A phone or identity-card number: a run of at least 8 digits that is not an amount.
    Number,
    /// An email address; `at` is the byte offset of its `@` in the text.
    Email { at: usize },
}

/// Personal data written in a text, as a byte range of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalSpan {
    pub range: std::ops::Range<usize>,
    pub kind: PersonalKind,
}

/// The personal data [`mask_text`] masks in `text`, in order and not overlapping, into `out`
/// (cleared first): for readers that must leave it out rather than show it masked, such as the
/// weekly summary's rising terms. An email's range starts at its local part and ends with its
/// domain; a number's covers its first to its last digit.
///
/// Most texts hold neither an `@` nor 8 digits, and are answered after one pass over their bytes.
pub fn personal_data_spans(text: &str, out: &mut Vec<PersonalSpan>) {
    out.clear();
    let bytes = text.as_bytes();
    let has_at = bytes.contains(&b'@');
    let enough_digits = count_digits(bytes) >= MIN_SENSITIVE_DIGITS;
    if !has_at && !enough_digits {
        return;
    }
    if has_at {
        find_emails(text, out);
    }
    if enough_digits {
        let emails = std::mem::take(out);
        find_numbers(text, &emails, out);
        if !emails.is_empty() {
            out.extend(emails);
            out.sort_unstable_by_key(|span| span.range.start);
        }
    }
}

/// Emails in `text`: around each `@`, a local part of letters, digits and `._%+-`, and a domain
/// of labels joined by dots whose last label is two letters or more ("an@example.vn", not
/// "5@10" or "@nguyen"). Letters outside ASCII count on both sides, so a Vietnamese word run
/// into the address ("hệbi@example.vn") is masked with it rather than left half visible.
fn find_emails(text: &str, out: &mut Vec<PersonalSpan>) {
    let bytes = text.as_bytes();
    // Where the previous email ended: a local part never reaches back over it.
    let mut floor = 0;
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b'@') {
        let at = from + offset;
        from = at + 1;
        let Some(start) = local_part_start(text, floor, at) else { continue };
        let Some(end) = domain_end(text, at + 1) else { continue };
        out.push(PersonalSpan { range: start..end, kind: PersonalKind::Email { at } });
        floor = end;
        from = end;
    }
}

/// The start of the local part ending at `at` (not before `floor`), from its first letter or
/// digit (a leading `.` or `-` is punctuation of the sentence); `None` without any.
fn local_part_start(text: &str, floor: usize, at: usize) -> Option<usize> {
    let mut start = at;
    while start > floor {
        let before = &text[floor..start];
        if let Some(tag) = MARK_TAGS.iter().find(|tag| before.ends_with(*tag)) {
            start -= tag.len();
            continue;
        }
        let ch = before.chars().next_back()?;
        let local = if ch.is_ascii() {
            ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '%' | '+' | '-')
        } else {
            is_word_char(ch)
        };
        if !local {
            break;
        }
        start -= ch.len_utf8();
    }
    // Leading punctuation stays outside (a `<mark>` stays in: its `</mark>` is inside).
    let first = text[start..at].find(|ch: char| ch.is_alphanumeric() || ch == '<')?;
    let start = start + first;
    text[start..at].contains(char::is_alphanumeric).then_some(start)
}

/// The end of the domain starting at `from`, without a final `.` or `-` (the end of the
/// sentence); `None` when what follows the `@` is not a domain.
fn domain_end(text: &str, from: usize) -> Option<usize> {
    let mut end = from;
    let mut domain = String::new();
    while end < text.len() {
        let rest = &text[end..];
        if let Some(tag) = MARK_TAGS.iter().find(|tag| rest.starts_with(*tag)) {
            end += tag.len();
            continue;
        }
        let ch = rest.chars().next()?;
        if !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-') || (!ch.is_ascii() && is_word_char(ch))) {
            break;
        }
        domain.push(ch);
        end += ch.len_utf8();
    }
    while let Some(last) = domain.pop() {
        if matches!(last, '.' | '-') {
            end = text[..end].rfind(last).unwrap_or(from);
        } else {
            domain.push(last);
            break;
        }
    }
    let (_, top) = domain.rsplit_once('.')?;
    let valid =
        domain.starts_with(char::is_alphanumeric) && top.chars().count() >= 2 && top.chars().all(char::is_alphabetic);
    valid.then_some(end)
}

/// A letter, digit or combining mark (text in NFD writes "ế" as "e" and two marks).
fn is_word_char(ch: char) -> bool {
    ch.is_alphanumeric() || unicode_normalization::char::is_combining_mark(ch)
}

/// The tags search snippets mark matches with.
const MARK_TAGS: [&str; 2] = ["<mark>", "</mark>"];

/// The length of the snippet tag at the start of `bytes`, if one is there.
fn tag_at(bytes: &[u8]) -> Option<usize> {
    MARK_TAGS.iter().map(|tag| tag.as_bytes()).find(|tag| bytes.starts_with(tag)).map(<[u8]>::len)
}

/// Characters that join digit groups into one number: "0912 345 678", "0912.345.678",
/// "0912-345-678", "0912/345/678", "0912_345_678", "0912,345,678".
const GROUP_SEPARATORS: &[u8] = b" .-/_,";

/// The length in bytes of the digit at `i`: 1 for an ASCII digit, 3 for a full-width one
/// ("０９１２", U+FF10 to U+FF19, which phone keyboards in East Asian input modes type), 0 for
/// anything else.
fn digit_len(bytes: &[u8], i: usize) -> usize {
    match bytes[i] {
        b'0'..=b'9' => 1,
        0xEF if bytes.get(i + 1) == Some(&0xBC) && bytes.get(i + 2).is_some_and(|b| (0x90..=0x99).contains(b)) => 3,
        _ => 0,
    }
}

/// The value of the digit at `i` (see [`digit_len`]).
fn digit_value(bytes: &[u8], i: usize) -> u8 {
    if bytes[i].is_ascii_digit() { bytes[i] - b'0' } else { bytes[i + 2] - 0x90 }
}

/// An ASCII or full-width digit.
fn is_digit(ch: char) -> bool {
    ch.is_ascii_digit() || ('\u{FF10}'..='\u{FF19}').contains(&ch)
}

/// How many digits `bytes` holds, ASCII or full-width. A byte scan; full-width digits are counted
/// only when the ASCII ones are too few and the text holds their lead byte at all.
fn count_digits(bytes: &[u8]) -> usize {
    let ascii = bytes.iter().filter(|b| b.is_ascii_digit()).count();
    if ascii >= MIN_SENSITIVE_DIGITS || !bytes.contains(&0xEF) {
        return ascii;
    }
    ascii + (0..bytes.len()).filter(|&i| digit_len(bytes, i) == 3).count()
}

/// Runs of at least 8 digits in `text`, outside the `emails` (sorted), that are personal
/// ([`is_personal_number`]).
fn find_numbers(text: &str, emails: &[PersonalSpan], out: &mut Vec<PersonalSpan>) {
    let bytes = text.as_bytes();
    let mut emails = emails.iter().peekable();
    let mut i = 0;
    while i < bytes.len() {
        let limit = match emails.peek() {
            Some(email) if i >= email.range.start => {
                i = i.max(email.range.end);
                emails.next();
                continue;
            }
            Some(email) => email.range.start,
            None => bytes.len(),
        };
        if digit_len(bytes, i) == 0 {
            i += 1;
            continue;
        }
        let (end, digits) = number_run(bytes, i, limit, digit_len);
        if digits >= MIN_SENSITIVE_DIGITS && is_personal_number(text, i, end) {
            out.push(PersonalSpan { range: i..end, kind: PersonalKind::Number });
        }
        i = end;
    }
}

/// The run of digit groups starting at `start` (a digit as `digit` sees it), before `limit`:
/// digits, single [`GROUP_SEPARATORS`] between groups, and snippet tags anywhere between digits.
/// Its end (after its last digit) and how many digits it holds.
fn number_run(bytes: &[u8], start: usize, limit: usize, digit: fn(&[u8], usize) -> usize) -> (usize, usize) {
    let skip_tags = |mut k: usize| {
        while k < limit
            && let Some(len) = tag_at(&bytes[k..limit])
        {
            k += len;
        }
        k
    };
    let (mut j, mut digits) = (start, 0);
    loop {
        while j < limit {
            let len = digit(bytes, j);
            if len == 0 {
                break;
            }
            digits += 1;
            j += len;
        }
        let end = j;
        let next = skip_tags(j);
        if next < limit && digit(bytes, next) > 0 {
            j = next;
            continue;
        }
        if next < limit && GROUP_SEPARATORS.contains(&bytes[next]) {
            let after = skip_tags(next + 1);
            if after < limit && digit(bytes, after) > 0 {
                j = after;
                continue;
            }
        }
        return (end, digits);
    }
}

/// The digit groups of a run and the separators between them (snippet tags looked through).
struct Groups {
    /// Per group: how many digits, the first digit and the value (saturating).
    groups: Vec<(usize, u8, u64)>,
    separators: Vec<u8>,
}

impl Groups {
    fn of(run: &[u8]) -> Groups {
        let mut groups: Vec<(usize, u8, u64)> = Vec::new();
        let mut separators = Vec::new();
        let mut in_group = false;
        let mut k = 0;
        while k < run.len() {
            if let Some(len) = tag_at(&run[k..]) {
                k += len;
                continue;
            }
            let len = digit_len(run, k);
            if len > 0 {
                let value = digit_value(run, k);
                match groups.last_mut() {
                    Some((count, _, total)) if in_group => {
                        *count += 1;
                        *total = total.saturating_mul(10).saturating_add(u64::from(value));
                    }
                    _ => groups.push((1, value, u64::from(value))),
                }
                in_group = true;
                k += len;
            } else {
                separators.push(run[k]);
                in_group = false;
                k += 1;
            }
        }
        Groups { groups, separators }
    }

    fn digits(&self) -> usize {
        self.groups.iter().map(|group| group.0).sum()
    }

    /// Money as Vietnamese (dots) or English (commas) writes it: thousands after a first group of
    /// one to three digits that does not start with 0 ("12.500.000", "1,000,000"), optionally
    /// ending in one or two decimals after the other mark ("1.500.000,50"). A first group
    /// starting with 0 is never money: "001.203.004.567" is an ID number, "0912.345.678" a phone.
    fn is_amount(&self) -> bool {
        let (mut groups, mut separators) = (&self.groups[..], &self.separators[..]);
        if groups.len() >= 3
            && let (Some(&last), Some(&first)) = (separators.last(), separators.first())
            && last != first
            && matches!(last, b'.' | b',')
            && (1..=2).contains(&groups[groups.len() - 1].0)
        {
            groups = &groups[..groups.len() - 1];
            separators = &separators[..separators.len() - 1];
        }
        let Some((&(lead, first_digit, _), rest)) = groups.split_first() else { return false };
        !rest.is_empty()
            && matches!(separators[0], b'.' | b',')
            && separators.iter().all(|&sep| sep == separators[0])
            && (1..=3).contains(&lead)
            && first_digit != 0
            && rest.iter().all(|group| group.0 == 3)
    }

    /// A date ("12/03/2021", "12.03.2021", "2021-03-12") or a span of years ("2024-2025",
    /// "2020/2021", "2024 2025"): these reach 8 digits and are no one's number.
    fn is_date(&self) -> bool {
        let same = self.separators.iter().all(|&sep| sep == self.separators[0]);
        match (&self.groups[..], same) {
            ([(1..=2, _, day), (1..=2, _, month), (4, _, _)], true)
            | ([(4, _, _), (2, _, month), (2, _, day)], true) => {
                matches!(self.separators[0], b'/' | b'.' | b'-') && (1..=31).contains(day) && (1..=12).contains(month)
            }
            ([(4, _, from), (4, _, to)], _) => {
                matches!(self.separators[0], b'/' | b'-' | b' ')
                    && (1900..2100).contains(from)
                    && (*from..=from + 10).contains(to)
            }
            _ => false,
        }
    }
}

/// Whether the run of at least 8 digits at `start..end` of `text` is a phone or ID number: not
/// an amount of money or a date. A leading `+` makes it a phone whatever its shape
/// ("+84.912.345.678"). "84.987.654.321" has the shape of an amount and of a mobile number in
/// international form (84, then 9 digits starting 3, 5, 7, 8 or 9): it is taken for a phone
/// unless a currency follows it ("84.987.654.321 đồng"), as in the texts citizens write a phone
/// is far likelier than tens of billions of dong.
fn is_personal_number(text: &str, start: usize, end: usize) -> bool {
    if text[..start].ends_with('+') {
        return true;
    }
    let groups = Groups::of(&text.as_bytes()[start..end]);
    if groups.is_date() {
        return false;
    }
    if !groups.is_amount() {
        return true;
    }
    let international_mobile = groups.digits() == 11
        && groups.groups[0].0 == 2
        && groups.groups[0].2 == 84
        && matches!(groups.groups[1].1, 3 | 5 | 7 | 8 | 9);
    international_mobile && !currency_follows(&text[end..])
}

/// Whether `rest` starts (after at most one space) with a currency: `đ`, `đồng`, `VNĐ`, `VND`,
/// `USD`, in any case, precomposed or not.
fn currency_follows(rest: &str) -> bool {
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let head: String = rest.chars().take(4).flat_map(char::to_lowercase).collect();
    let head = head.as_str();
    if let Some(after) = head.strip_prefix('đ') {
        // "đ" alone, "đồng" (precomposed or with combining marks), not "đường".
        return after.chars().next().is_none_or(|ch| !ch.is_alphabetic())
            || after.starts_with('ồ')
            || after.starts_with("o\u{302}");
    }
    head.starts_with("vnd") || head.starts_with("vnđ") || head.starts_with("usd")
}

/// A number run (digits, separators and snippet tags) with all but its last digits as `*`.
fn mask_digits_into(run: &str, out: &mut String) {
    let digits = run.chars().filter(|&ch| is_digit(ch)).count();
    let mut seen = 0;
    for ch in run.chars() {
        if is_digit(ch) {
            seen += 1;
            out.push(if seen + VISIBLE_DIGITS > digits { ch } else { '*' });
        } else {
            out.push(ch);
        }
    }
}

/// A local part as [`mask_email`] shows it: its first letter and `***`. Snippet tags inside go
/// with the rest: every match in a local part opens and closes within it.
fn mask_local_part_into(local: &str, out: &mut String) {
    let mut rest = local;
    while let Some(tag) = MARK_TAGS.iter().find(|tag| rest.starts_with(*tag)) {
        rest = &rest[tag.len()..];
    }
    out.extend(rest.chars().next());
    out.push_str("***");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_phone_and_id_numbers_in_text() {
        assert_eq!(mask_text("Gọi 0912 345 678 hoặc 0912345678"), "Gọi **** *** 678 hoặc *******678");
        assert_eq!(mask_text("CCCD số 001203004567, cấp ngày 12/3/2021"), "CCCD số *********567, cấp ngày 12/3/2021");
        assert_eq!(mask_text("năm 2025, 150 hộ dân, 12.500.000 đồng"), "năm 2025, 150 hộ dân, 12.500.000 đồng");
        // The name the other crates call it by does the same.
        assert_eq!(mask_numbers("SĐT 0977888999"), "SĐT *******999");
    }

    #[test]
    fn masks_emails_in_free_text_like_the_contact_email() {
        let cases = [
            ("email bi.nguyen@example.com", "email b***@example.com"),
            // At the very start and end, and ending a sentence.
            ("an@example.vn", "a***@example.vn"),
            ("Liên hệ: an.tran@sub.example.vn.", "Liên hệ: a***@sub.example.vn."),
            // Several, in brackets and after a comma.
            (
                "Gửi (lan_pham+don@mail.example.org), cc: HUNG-LE@EXAMPLE.COM, ban@ubnd.example.gov.vn",
                "Gửi (l***@mail.example.org), cc: H***@EXAMPLE.COM, b***@ubnd.example.gov.vn",
            ),
            // Vietnamese all around, and run into the address without a space.
            (
                "Chị Bình, thư điện tử binh@example.vn, đề nghị phản hồi",
                "Chị Bình, thư điện tử b***@example.vn, đề nghị phản hồi",
            ),
            ("liên hệbi@example.vn ạ", "liên h***@example.vn ạ"),
            // Digits in the address: one email, not a phone number.
            ("0977888999@example.com", "0***@example.com"),
            // Leading punctuation belongs to the sentence.
            ("...an@example.vn", "...a***@example.vn"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_text(text), masked, "{text}");
        }
        let both = mask_text("Số điện thoại 0977888999 email dong.pham@example.com");
        assert_eq!(both, "Số điện thoại *******999 email d***@example.com");
    }

    #[test]
    fn an_at_sign_without_an_address_is_left_alone() {
        for text in [
            "@",
            "@@@",
            "gửi @nguyenvan trên mạng xã hội",
            "an@",
            "an@ example.vn",
            "an@localhost",
            "tỉ lệ 5@10.000",
            "a@b.c",
            "@example.vn",
            "-@example.vn",
            "giá 5@ 10 nghìn",
        ] {
            assert_eq!(mask_text(text), text, "{text}");
        }
    }

    #[test]
    fn snippet_marks_do_not_hide_personal_data_from_masking() {
        // Search snippets mark each matched syllable; the address and the number stay whole.
        assert_eq!(
            mask_text("…gửi <mark>bi</mark>.<mark>nguyen</mark>@<mark>example</mark>.com hoặc"),
            "…gửi b***@<mark>example</mark>.com hoặc"
        );
        assert_eq!(mask_text("gọi <mark>0912</mark> 345 678 nhé"), "gọi <mark>****</mark> *** 678 nhé");
        assert_eq!(mask_text("số <mark>0912345678</mark>"), "số <mark>*******678</mark>");
    }

    #[test]
    fn spans_name_what_is_personal() {
        let text = "Gọi 0912 345 678, email an@example.vn; năm 2025";
        let mut spans = Vec::new();
        personal_data_spans(text, &mut spans);
        let found: Vec<(&str, PersonalKind)> = spans.iter().map(|s| (&text[s.range.clone()], s.kind)).collect();
        let at = text.find('@').unwrap();
        assert_eq!(found, [("0912 345 678", PersonalKind::Number), ("an@example.vn", PersonalKind::Email { at })]);
        personal_data_spans("Đường làng xuống cấp", &mut spans);
        assert!(spans.is_empty());
    }

    #[test]
    fn long_texts_are_masked_whole_and_in_linear_time() {
        let sentence = "Đề nghị xử lý bãi rác, liên hệ an.nguyen@example.vn hoặc 0912 345 678. ";
        let text = sentence.repeat(20_000);
        let masked = mask_text(&text);
        assert_eq!(masked, "Đề nghị xử lý bãi rác, liên hệ a***@example.vn hoặc **** *** 678. ".repeat(20_000));
        // Many `@` and long runs that never make an address: every byte is looked at a few times,
        // not once per `@`.
        for odd in ["a@".repeat(200_000), format!("{}@", "a".repeat(400_000)).repeat(2), "@.".repeat(200_000)] {
            assert_eq!(mask_text(&odd), odd);
        }
        let many = "x@example.vn ".repeat(100_000);
        assert_eq!(mask_text(&many), "x***@example.vn ".repeat(100_000));
    }

    #[test]
    fn masks_contact_fields() {
        let contact = Contact {
            name: Some("Nguyễn Văn An".into()),
            phone: Some("+84 912 345 678".into()),
            email: Some("an@example.vn".into()),
        };
        let masked = mask_contact(&contact);
        assert_eq!(masked.name.as_deref(), Some("N. V. A."));
        assert_eq!(masked.phone.as_deref(), Some("+** *** *** 678"));
        assert_eq!(masked.email.as_deref(), Some("a***@example.vn"));
    }

    #[test]
    fn phone_fields_are_masked_whatever_their_separators() {
        assert_eq!(mask_phone("0912345678"), "*******678");
        assert_eq!(mask_phone("0912  345 678"), "****  *** 678");
        assert_eq!(mask_phone("+84 912.345-678"), "+** ***.***-678");
        assert_eq!(mask_phone("113"), "113");
        // Where the text masking sees one number, both agree.
        for phone in ["0912345678", "0912 345 678", "0912.345.678", "+84 912 345 678", "028 3829 1234"] {
            assert_eq!(mask_phone(phone), mask_text(phone), "{phone}");
        }
    }

    #[test]
    fn masks_numbers_written_with_any_separator() {
        let cases = [
            // An ID number with dots has the shape of an amount but starts with 0.
            ("CCCD 001.203.004.567", "CCCD ***.***.***.567"),
            ("SĐT 0912.345.678", "SĐT ****.***.678"),
            // A leading `+` makes it a phone.
            ("gọi +84.912.345.678", "gọi +**.***.***.678"),
            ("gọi +84 912 345 678", "gọi +** *** *** 678"),
            // Slashes, underscores and commas join groups like spaces and dashes.
            ("0912/345/678", "****/***/678"),
            ("0912_345_678", "****_***_678"),
            ("0912,345,678", "****,***,678"),
            ("0912-345 678", "****-*** 678"),
            // Full-width digits are digits.
            ("số ０９１２３４５６７８ nhé", "số *******６７８ nhé"),
            ("số ０９１２ ３４５ ６７８", "số **** *** ６７８"),
        ];
        for (text, masked) in cases {
            assert_eq!(mask_text(text), masked, "{text}");
        }
    }

    #[test]
    fn amounts_dates_and_years_stay_readable() {
        for text in [
            "500.000 đồng",
            "hỗ trợ 1.200.000.000 đồng",
            "12.500.000",
            "1,000,000 VND",
            "12,500,000",
            "1.500.000,50 đồng",
            "ngày 12/03/2021",
            "ngày 12.03.2021 và 2021-03-12",
            "năm học 2024-2025, niên khoá 2020/2021, năm 2024 2025",
            "quốc lộ 1A, QL 279, tổ 12",
            "84.987.654.321 đồng",
            "84.987.654.321đ",
            "84.987.654.321 VNĐ",
            // 84 and then no mobile number: an amount.
            "84.087.654.321",
            "84.987.654.321.000",
        ] {
            assert_eq!(mask_text(text), text, "{text}");
        }
    }

    #[test]
    fn a_country_code_in_amount_shape_is_a_phone_without_a_currency() {
        assert_eq!(mask_text("gọi 84.987.654.321 nhé"), "gọi **.***.***.321 nhé");
        assert_eq!(mask_text("84.987.654.321 đường"), "**.***.***.321 đường");
        // A first group starting with 0 is never money, commas or dots.
        assert_eq!(mask_text("0,912,345,678"), "*,***,***,678");
        assert_eq!(mask_text("012.500.000"), "***.***.000");
    }

    #[test]
    fn phone_fields_count_full_width_digits() {
        assert_eq!(mask_phone("０９１２３４５６７８"), "*******６７８");
        assert_eq!(mask_phone("+84.912.345.678"), mask_text("+84.912.345.678"));
    }

    #[test]
    fn person_ids_are_masked_whatever_their_separators() {
        for (id, shown) in [
            ("079200009999", "*********999"),
            ("079.200.009.999", "***.***.***.999"),
            ("079 200 009 999", "*** *** *** 999"),
            ("079-200-009-999", "***-***-***-999"),
            ("cccd:001203004567", "cccd:*********567"),
            ("０７９２００００９９９９", "*********９９９"),
            ("an.nguyen@example.vn", "a***@example.vn"),
            // A unit's own numbering stays readable.
            ("BD-001", "BD-001"),
            ("HV-12345", "HV-12345"),
            ("2", "2"),
        ] {
            assert_eq!(mask_person_id(id), shown, "{id}");
        }
    }

    #[test]
    fn excerpts_hide_what_touches_a_cut() {
        let cases = [
            // A phone cut after 7 of its 10 digits, at the end.
            ("… gọi 0912 345…", "… gọi **** ***…"),
            ("gọi <mark>0912</mark> 345…", "gọi <mark>****</mark> ***…"),
            ("đường hỏng 0912345…", "đường hỏng *******…"),
            // Cut at the start: the digits before are gone, the last three stay as in the whole.
            ("…345 678 gọi lại", "…*** 678 gọi lại"),
            ("…<mark>345</mark> 678 gọi", "…<mark>***</mark> 678 gọi"),
            // Cut on both sides of the same run.
            ("…345 678…", "…*** ***…"),
            // A long number cut at the end: masked by the text rule, then the rest too.
            ("gọi 0912 345 67…", "gọi **** *** **…"),
            // An address cut before its domain ends, or before its `@`.
            ("… nguyen.van.a@example…", "… n***@example…"),
            ("liên hệ <mark>nguyen</mark>.van.a@<mark>example</mark>…", "liên hệ n***@<mark>example</mark>…"),
            ("gửi nguyen.van.a…", "gửi n***…"),
            ("gửi an@…", "gửi a***@…"),
            ("gửi 0977888999@exam…", "gửi ****@exam…"),
            // A whole address in a cut excerpt is masked as in the text.
            ("…email an@example.vn ạ…", "…email a***@example.vn ạ…"),
        ];
        for (excerpt, masked) in cases {
            assert_eq!(mask_excerpt(excerpt), masked, "{excerpt}");
        }
    }

    #[test]
    fn excerpts_keep_what_no_cut_touches() {
        for text in [
            "gọi 113 khi cần",
            "…đường làng xuống cấp, năm 2025 hư hỏng nặng…",
            "…hỗ trợ 500.000 đồng mỗi hộ…",
            "…cả thôn…",
            "…",
            "",
            "Chị Bình đề nghị…",
            "…đề nghị xử lý. Liên hệ ban quản lý.…",
        ] {
            assert_eq!(mask_excerpt(text), text, "{text}");
        }
        // Without a cut the excerpt is masked like any text.
        assert_eq!(mask_excerpt("gọi 0912 345"), "gọi 0912 345");
        assert_eq!(mask_excerpt("gọi 0912 345 678"), mask_text("gọi 0912 345 678"));
    }

    #[test]
    fn queries_holding_personal_data_are_named() {
        for (q, why) in [
            ("0987654321", PersonalQuery::Number),
            ("001203004567", PersonalQuery::Number),
            ("0912 345 678", PersonalQuery::Number),
            ("001.203.004.567", PersonalQuery::Number),
            ("+84.912.345.678", PersonalQuery::Number),
            ("０９１２３４５６７８", PersonalQuery::Number),
            ("an@example.vn", PersonalQuery::Email),
            ("nguyen.van.a@example", PersonalQuery::Email),
            ("an@", PersonalQuery::Email),
            // Parts of a phone written in groups.
            ("0912", PersonalQuery::NumberPart),
            ("0912 345", PersonalQuery::NumberPart),
            ("\"345 678\"", PersonalQuery::NumberPart),
            ("345 678", PersonalQuery::NumberPart),
            ("912.345", PersonalQuery::NumberPart),
            ("345 nhà 678", PersonalQuery::NumberPart),
            ("+345 +678", PersonalQuery::NumberPart),
            ("+84 912", PersonalQuery::NumberPart),
            ("-0912 đường", PersonalQuery::NumberPart),
            ("０９１２", PersonalQuery::NumberPart),
            ("345678", PersonalQuery::NumberPart),
            ("12 34 56", PersonalQuery::NumberPart),
        ] {
            assert_eq!(personal_query(q), Some(why), "{q}");
        }
    }

    #[test]
    fn ordinary_queries_with_numbers_are_searched() {
        for q in [
            "",
            "đất đai",
            "năm 2025",
            "năm 2024 2025",
            "quốc lộ 1A",
            "QL 279",
            "tổ 12 khu phố 345",
            "500.000 đồng",
            "1.200.000.000 đồng",
            "12.500.000",
            "ngày 12/03/2021",
            "05/09/2025",
            "\"giải phóng mặt bằng\"",
            "gửi @nguyenvan",
            "345",
            "+84",
        ] {
            assert_eq!(personal_query(q), None, "{q}");
        }
    }

    proptest::proptest! {
        #[test]
        fn excerpt_masking_never_panics_and_hides_at_least_what_text_masking_hides(
            text in "(…)?[\\PC0-9 .@<>/a-z]{0,60}(…)?"
        ) {
            let excerpt = mask_excerpt(&text);
            // Whatever the text masking turned into `*` stays hidden.
            let masked = mask_text(&text);
            let stars = |s: &str| s.chars().filter(|&c| c == '*').count();
            proptest::prop_assert!(stars(&excerpt) >= stars(&masked), "{} / {}", excerpt, masked);
        }

        #[test]
        fn no_phone_cut_at_the_end_of_an_excerpt_shows_a_hidden_digit(
            before in "[a-z ]{0,20}",
            phone in "0[0-9]{3}[ .-]?[0-9]{3}[ .-]?[0-9]{3}",
            cut in 1usize..12,
        ) {
            let cut = cut.min(phone.len());
            let excerpt = format!("{before} {}…", &phone[..cut]);
            let masked = mask_excerpt(&excerpt);
            proptest::prop_assert!(!masked.contains(|c: char| c.is_ascii_digit()), "{}", masked);
        }

        #[test]
        fn personal_query_never_panics(q in "\\PC{0,60}") {
            let _ = personal_query(&q);
        }
    }

    proptest::proptest! {
        #[test]
        fn masking_never_panics_and_keeps_length_without_emails(text in "\\PC{0,80}") {
            let masked = mask_text(&text);
            if !text.contains('@') {
                proptest::prop_assert_eq!(masked.chars().count(), text.chars().count());
            }
        }

        #[test]
        fn no_email_survives_masking(
            before in "\\PC{0,30}",
            local in "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,20}",
            domain in "[a-z0-9]{1,10}(\\.[a-z0-9]{1,10}){0,2}\\.[a-z]{2,6}",
            after in "\\PC{0,30}",
        ) {
            let text = format!("{before} {local}@{domain} {after}");
            let masked = mask_text(&text);
            let first = local.chars().next().unwrap();
            proptest::prop_assert!(masked.contains(&format!("{first}***@{domain}")), "{}", masked);
        }
    }
}
