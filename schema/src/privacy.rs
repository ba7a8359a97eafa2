//! Masking of personal data for readers whose role does not allow it: contact fields, and phone
//! and identity-card numbers written inside the text (citizens often put them in the body).

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
    masked.title = mask_numbers(&petition.title);
    masked.body = mask_numbers(&petition.body);
    masked
}

pub fn mask_contact(contact: &Contact) -> Contact {
    Contact {
        name: contact.name.as_deref().map(mask_name),
        phone: contact.phone.as_deref().map(mask_numbers),
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

/// Replaces all but the last digits of every run of at least 8 digits (spaces, dots and dashes
/// between groups allowed, as in "0912 345 678") with `*`.
pub fn mask_numbers(text: &str) -> String {
    // Most texts hold too few digits for any number worth masking: no need to look closer.
    if text.bytes().filter(u8::is_ascii_digit).count() < MIN_SENSITIVE_DIGITS {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits, with single separators between digit groups.
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                j += 1;
                end = j;
            } else if matches!(chars[j], ' ' | '.' | '-') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= MIN_SENSITIVE_DIGITS && !is_amount(&chars[i..end]) {
            let mut seen = 0;
            for &ch in &chars[i..end] {
                if ch.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen > digits - VISIBLE_DIGITS { ch } else { '*' });
                } else {
                    out.push(ch);
                }
            }
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// "12.500.000": thousands separated by dots, as Vietnamese writes amounts of money, not a phone.
fn is_amount(run: &[char]) -> bool {
    let text: String = run.iter().collect();
    let groups: Vec<&str> = text.split('.').collect();
    groups.len() >= 2
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|group| group.len() == 3)
        && groups.iter().all(|group| group.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_phone_and_id_numbers_in_text() {
        assert_eq!(mask_numbers("Gọi 0912 345 678 hoặc 0912345678"), "Gọi **** *** 678 hoặc *******678");
        assert_eq!(
            mask_numbers("CCCD số 001203004567, cấp ngày 12/3/2021"),
            "CCCD số *********567, cấp ngày 12/3/2021"
        );
        assert_eq!(mask_numbers("năm 2025, 150 hộ dân, 12.500.000 đồng"), "năm 2025, 150 hộ dân, 12.500.000 đồng");
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

    proptest::proptest! {
        #[test]
        fn masking_never_panics_and_keeps_length(text in "\\PC{0,80}") {
            let masked = mask_numbers(&text);
            proptest::prop_assert_eq!(masked.chars().count(), text.chars().count());
        }
    }
}
