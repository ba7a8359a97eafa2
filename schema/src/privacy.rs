//! Masking of personal data for readers whose role does not allow it: contact fields, and phone
//! and identity-card numbers and email addresses written inside the text (citizens often put
//! them in the body). The paths that show text to such a reader (search, SQL views, exports,
//! pages, Open311, summaries) call [`mask_text`], most by its older name [`mask_numbers`], so
//! they all hide the same things.

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
    masked.title = mask_text(&petition.title);
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
    let digits = phone.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    phone
        .chars()
        .map(|ch| {
            if ch.is_ascii_digit() {
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
/// sees it: in every run of at least 8 digits (spaces, dots and dashes between groups allowed, as
/// in "0912 345 678") all but the last three digits become `*`, and every email address is
/// reduced like the contact email ("bi.nguyen@example.com" -> "b***@example.com").
///
/// Personal names written in the text are left as they are: they cannot be found reliably.
/// Nothing tells the person "Nguyễn Văn An" from "Trần Hưng Đạo" street or "Hoà Bình" ward
/// without a list of every name, and guessing would garble the matter the citizen describes.
///
/// Search snippets mark matches with `<mark>` and `</mark>`; those tags are looked through, so
/// "<mark>0912</mark> 345 678" is still one number and keeps its tags.
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
    let enough_digits = bytes.iter().filter(|b| b.is_ascii_digit()).count() >= MIN_SENSITIVE_DIGITS;
    if !has_at && !enough_digits {
        return;
    }
    if has_at {
        find_emails(text, out);
    }
    if enough_digits {
        let emails = std::mem::take(out);
        find_numbers(bytes, &emails, out);
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

/// Runs of at least 8 digits in `bytes`, outside the `emails` (sorted), that are not amounts.
fn find_numbers(bytes: &[u8], emails: &[PersonalSpan], out: &mut Vec<PersonalSpan>) {
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
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        // The run: digits, with single separators between digit groups and snippet tags
        // anywhere between digits.
        loop {
            while j < limit && bytes[j].is_ascii_digit() {
                digits += 1;
                j += 1;
            }
            end = end.max(j);
            let skip_tags = |mut k: usize| {
                while k < limit
                    && let Some(len) = tag_at(&bytes[k..limit])
                {
                    k += len;
                }
                k
            };
            let next = skip_tags(j);
            if next < limit && bytes[next].is_ascii_digit() {
                j = next;
                continue;
            }
            if next < limit && matches!(bytes[next], b' ' | b'.' | b'-') {
                let after = skip_tags(next + 1);
                if after < limit && bytes[after].is_ascii_digit() {
                    j = after;
                    continue;
                }
            }
            break;
        }
        if digits >= MIN_SENSITIVE_DIGITS && !is_amount(&bytes[start..end]) {
            out.push(PersonalSpan { range: start..end, kind: PersonalKind::Number });
        }
        i = end;
    }
}

/// "12.500.000": thousands separated by dots, as Vietnamese writes amounts of money, not a phone.
fn is_amount(run: &[u8]) -> bool {
    let mut groups: Vec<usize> = vec![0];
    let mut k = 0;
    while k < run.len() {
        if let Some(len) = tag_at(&run[k..]) {
            k += len;
            continue;
        }
        match run[k] {
            b'0'..=b'9' => *groups.last_mut().expect("never empty") += 1,
            b'.' => groups.push(0),
            _ => return false,
        }
        k += 1;
    }
    groups.len() >= 2 && (1..=3).contains(&groups[0]) && groups[1..].iter().all(|&len| len == 3)
}

/// A number run (ASCII digits, separators and snippet tags) with all but its last digits as `*`.
fn mask_digits_into(run: &str, out: &mut String) {
    let digits = run.bytes().filter(u8::is_ascii_digit).count();
    let mut seen = 0;
    for ch in run.chars() {
        if ch.is_ascii_digit() {
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
