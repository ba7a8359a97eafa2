//! End-to-end tests of the index on disk (temporary directories): real Vietnamese news from
//! `connectors/data/vntc_train_sample.jsonl` (the VNTC news sample) as petition text, plus small synthetic petitions.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use voxpop_schema::{Petition, text};

use crate::{IndexError, PetitionIndex, SearchRequest, SearchResults, WriterOptions};

/// One indexing thread and a small budget: tests open many indexes side by side.
fn small_writer() -> WriterOptions {
    WriterOptions { num_threads: 1, memory_budget_bytes: 20_000_000 }
}

fn open(dir: &Path) -> PetitionIndex {
    PetitionIndex::open_or_create_with(dir, &small_writer()).expect("open index")
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 0, 0, 0).unwrap()
}

const PROVINCES: [&str; 3] = ["01", "79", "48"];

/// A synthetic petition (the builder marks it as demo data).
fn petition(title: &str, body: &str, province: &str, commune: &str, hours: i64) -> Petition {
    let mut petition =
        Petition::builder().title(title).body(body).received_at(base_time() + Duration::hours(hours)).build();
    petition.province_code = province.to_owned();
    petition.commune_code = commune.to_owned();
    petition.language = Some("vi".to_owned());
    petition
}

/// Real news articles as petition text: the headline as title, the article as body.
fn news_petitions(limit: usize) -> Option<Vec<Petition>> {
    // The project's own copy of the VNTC sample (see connectors/data/PROVENANCE.md).
    let path = voxpop_schema::source_file("connectors/data/vntc_train_sample.jsonl");
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut petitions = Vec::new();
    for (index, line) in raw.lines().take(limit).enumerate() {
        let record: serde_json::Value = serde_json::from_str(line).expect("json line");
        let article = record["text"].as_str().expect("text field");
        let headline: String = article.chars().take_while(|ch| *ch != '(').take(120).collect();
        let province = PROVINCES[index % PROVINCES.len()];
        let commune = format!("{:05}", index % 7);
        petitions.push(petition(headline.trim(), article, province, &commune, index as i64));
    }
    Some(petitions)
}

fn search(index: &PetitionIndex, request: &SearchRequest) -> SearchResults {
    index.search(request).unwrap_or_else(|err| panic!("search {request:?} failed: {err}"))
}

fn total(index: &PetitionIndex, q: &str) -> usize {
    search(index, &SearchRequest { limit: 0, ..SearchRequest::text(q) }).total
}

fn ids(results: &SearchResults) -> HashSet<uuid::Uuid> {
    results.hits.iter().map(|hit| hit.id).collect()
}

fn folded_words(text_in: &str) -> HashSet<String> {
    text::fold(text_in).to_lowercase().split(|ch: char| !ch.is_alphanumeric()).map(str::to_owned).collect()
}

/// Petitions whose text contains `needle` once both are folded and lower-cased, with runs of
/// non-alphanumerics read as one space: what a folded phrase query should find.
fn containing_folded(petitions: &[Petition], needle: &str) -> HashSet<uuid::Uuid> {
    let squash = |text_in: &str| -> String {
        let folded = text::fold(text_in).to_lowercase();
        folded.split(|ch: char| !ch.is_alphanumeric()).filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
    };
    let needle = format!(" {} ", squash(needle));
    petitions
        .iter()
        .filter(|p| {
            format!(" {} ", squash(&p.title)).contains(&needle) || format!(" {} ", squash(&p.body)).contains(&needle)
        })
        .map(|p| p.id)
        .collect()
}

#[test]
fn folded_query_and_phrases_find_real_news() {
    let Some(news) = news_petitions(1000) else { return };
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    index.add_bulk(&news).unwrap();
    index.commit(1).unwrap();
    assert_eq!(index.num_docs(), news.len() as u64);

    // "đất đai" in the text is found by a query typed without diacritics.
    let with_phrase = containing_folded(&news, "đất đai");
    assert!(with_phrase.len() >= 10, "fixture has {} articles on land", with_phrase.len());
    // AND by default: an article matches when it has both syllables, anywhere.
    let with_both = news
        .iter()
        .filter(|p| {
            let words = folded_words(&format!("{} {}", p.title, p.body));
            words.contains("dat") && words.contains("dai")
        })
        .count();
    assert!(with_both > with_phrase.len());
    assert_eq!(total(&index, "dat dai"), with_both);
    assert!(with_both < total(&index, "dat") && with_both < total(&index, "dai"));

    for q in ["\"dat dai\"", "\"đất đai\""] {
        let phrase = search(&index, &SearchRequest { limit: 100, ..SearchRequest::text(q) });
        assert_eq!(ids(&phrase), containing_folded(&news, "dat dai"), "{q}");
    }

    let expected = containing_folded(&news, "giải phóng mặt bằng");
    assert!(expected.len() >= 3);
    let exact = search(&index, &SearchRequest::text("\"giải phóng mặt bằng\""));
    let folded = search(&index, &SearchRequest::text("\"giai phong mat bang\""));
    assert_eq!(ids(&folded), expected);
    assert_eq!(ids(&exact), expected);
    // A phrase is an order: the same syllables reordered are not the phrase.
    assert!(total(&index, "\"bằng mặt phóng giải\"") < expected.len());
}

#[test]
fn diacritics_rank_exact_matches_first() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    // Synthetic: three titles that fold to the same syllable "dat", bodies of equal length.
    let dat_vang = petition("Tấm dát vàng", "Phản ánh về tấm dát ở cổng chợ.", "01", "00004", 0);
    let dat_dai = petition("Tranh chấp đất", "Phản ánh về thửa đất ở cổng chợ.", "01", "00004", 1);
    let dat_do = petition("Bước dật dờ", "Phản ánh về bước dật ở cổng chợ.", "01", "00004", 2);
    index.apply(&[dat_vang.clone(), dat_dai.clone(), dat_do.clone()], 1).unwrap();

    let results = search(&index, &SearchRequest::text("đất"));
    assert_eq!(results.total, 3, "the folded view matches all three");
    assert_eq!(results.hits[0].id, dat_dai.id);
    assert!(results.hits[0].score > results.hits[1].score);
    let results = search(&index, &SearchRequest::text("dát"));
    assert_eq!(results.hits[0].id, dat_vang.id);
    // Without diacritics nothing is preferred by diacritics; all three are found.
    assert_eq!(total(&index, "dat"), 3);
    assert_eq!(total(&index, "DAT"), 3);
}

#[test]
fn tone_placement_variants_find_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    let old_style = petition("Ngập nước ở phường Hoà Bình", "Đường ngập sau mưa.", "01", "00004", 0);
    let new_style = petition("Ngập nước ở phường Hòa Bình", "Đường ngập sau mưa.", "01", "00004", 1);
    let other_word = petition("Ngập nước ở phường Hóa Bình", "Đường ngập sau mưa.", "01", "00004", 2);
    index.apply(&[old_style.clone(), new_style.clone(), other_word.clone()], 1).unwrap();

    for q in ["Hoà", "Hòa", "hoà bình", "\"phường Hòa Bình\"", "Hoa\u{0300}"] {
        let results = search(&index, &SearchRequest::text(q));
        let top_two: HashSet<_> = results.hits.iter().take(2).map(|hit| hit.id).collect();
        assert_eq!(top_two, HashSet::from([old_style.id, new_style.id]), "{q}");
        assert_eq!(results.hits.last().unwrap().id, other_word.id, "{q}: Hóa only matches folded");
    }
}

#[test]
fn filters_and_facets_agree_with_the_records() {
    let Some(news) = news_petitions(300) else { return };
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    index.apply(&news, 3).unwrap();

    let q = "chính phủ";
    let all = search(&index, &SearchRequest { limit: 0, ..SearchRequest::text(q) });
    assert!(all.total > 10);
    let facet_sum: u64 = all.province_facets.iter().map(|facet| facet.count).sum();
    assert_eq!(facet_sum, all.total as u64);
    assert!(all.province_facets.windows(2).all(|pair| pair[0].count >= pair[1].count), "sorted by count");
    for facet in &all.province_facets {
        let filtered = search(
            &index,
            &SearchRequest { province: Some(facet.province_code.clone()), limit: 100, ..SearchRequest::text(q) },
        );
        assert_eq!(filtered.total as u64, facet.count, "province {}", facet.province_code);
        assert!(filtered.hits.iter().all(|hit| hit.province_code == facet.province_code));
        assert_eq!(filtered.province_facets.len(), 1);
    }

    // Commune and time window, checked against the records themselves.
    let from = base_time() + Duration::hours(50);
    let to = base_time() + Duration::hours(150);
    let request = SearchRequest {
        commune: Some("00003".to_owned()),
        from: Some(from),
        to: Some(to),
        limit: 100,
        ..SearchRequest::default()
    };
    let expected: HashSet<_> = news
        .iter()
        .filter(|p| p.commune_code == "00003" && p.received_at >= from && p.received_at < to)
        .map(|p| p.id)
        .collect();
    let results = search(&index, &request);
    assert_eq!(results.total, expected.len());
    assert_eq!(ids(&results), expected);
    // Empty query browses newest first.
    assert!(results.hits.windows(2).all(|pair| pair[0].received_at >= pair[1].received_at));

    // A window with `from` after `to`, and unknown codes, match nothing without failing.
    assert_eq!(search(&index, &SearchRequest { from: Some(to), to: Some(from), ..SearchRequest::default() }).total, 0);
    assert_eq!(search(&index, &SearchRequest { province: Some("99".to_owned()), ..SearchRequest::default() }).total, 0);
    // Microsecond precision: `from` is inclusive, `to` exclusive.
    let first = news[0].received_at;
    let exactly =
        SearchRequest { from: Some(first), to: Some(first + Duration::microseconds(1)), ..SearchRequest::default() };
    assert_eq!(search(&index, &exactly).total, 1);
}

#[test]
fn paging_is_capped_and_consistent() {
    let Some(news) = news_petitions(300) else { return };
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    index.apply(&news, 1).unwrap();
    let q = "việt nam";
    let top_ten = search(&index, &SearchRequest { limit: 10, ..SearchRequest::text(q) });
    let first = search(&index, &SearchRequest { limit: 5, ..SearchRequest::text(q) });
    let second = search(&index, &SearchRequest { limit: 5, offset: 5, ..SearchRequest::text(q) });
    let paged: Vec<_> = first.hits.iter().chain(&second.hits).map(|hit| hit.id).collect();
    let whole: Vec<_> = top_ten.hits.iter().map(|hit| hit.id).collect();
    assert_eq!(paged, whole);
    let greedy = search(&index, &SearchRequest { limit: 100_000, ..SearchRequest::default() });
    assert_eq!(greedy.hits.len(), crate::MAX_LIMIT);
    assert_eq!(greedy.total, news.len());
    let beyond = search(&index, &SearchRequest { offset: usize::MAX, ..SearchRequest::default() });
    assert!(beyond.hits.is_empty());
}

#[test]
fn apply_is_an_idempotent_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    let batch: Vec<Petition> =
        (0..20).map(|i| petition(&format!("Đèn đường hỏng số {i}"), "Cả xóm tối om.", "01", "00004", i)).collect();
    index.apply(&batch, 1).unwrap();
    index.apply(&batch, 1).unwrap();
    assert_eq!(index.num_docs(), 20);

    // A petition corrected upstream replaces its earlier version.
    let mut corrected = batch[3].clone();
    corrected.title = "Cống thoát nước bị tắc".to_owned();
    index.apply(&[corrected.clone()], 2).unwrap();
    assert_eq!(index.num_docs(), 20);
    assert_eq!(index.get(&corrected.id).unwrap().unwrap().title, corrected.title);
    assert_eq!(total(&index, "cống thoát nước"), 1);
    assert_eq!(total(&index, "\"đèn đường hỏng số 3\""), 0);

    // The same id twice in one batch keeps the last.
    let mut twice = batch[4].clone();
    twice.title = "Phiên bản cuối".to_owned();
    index.apply(&[batch[4].clone(), twice.clone()], 3).unwrap();
    assert_eq!(index.num_docs(), 20);
    assert_eq!(index.get(&twice.id).unwrap().unwrap().title, "Phiên bản cuối");
}

#[test]
fn checkpoint_survives_reopening_and_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("data").join("index");
    let first = petition("Rác thải", "Bãi rác gây mùi.", "01", "00004", 0);
    {
        let index = open(&nested);
        assert_eq!(index.checkpoint(), None);
        index.apply(std::slice::from_ref(&first), 7).unwrap();
        assert_eq!(index.checkpoint(), Some(7));
        // One writer per directory.
        assert!(matches!(PetitionIndex::open_or_create_with(&nested, &small_writer()), Err(IndexError::Locked { .. })));
    }
    let index = open(&nested);
    assert_eq!(index.checkpoint(), Some(7));
    assert_eq!(index.num_docs(), 1);
    assert_eq!(index.get(&first.id).unwrap().unwrap().body, "Bãi rác gây mùi.");

    let reader = PetitionIndex::open_read_only(&nested).unwrap();
    assert_eq!(reader.checkpoint(), Some(7));
    assert_eq!(reader.num_docs(), 1);
    assert!(matches!(reader.apply(std::slice::from_ref(&first), 8), Err(IndexError::ReadOnly)));

    // Rebuild: nothing changes for searchers until the commit, then all at once.
    let rebuilt: Vec<Petition> = (0..5).map(|i| petition("Ổ gà", "Đường nhiều ổ gà.", "79", "26734", i)).collect();
    index.clear().unwrap();
    index.add_bulk(&rebuilt).unwrap();
    assert_eq!(index.num_docs(), 1);
    index.commit(9).unwrap();
    assert_eq!(index.num_docs(), 5);
    assert_eq!(index.checkpoint(), Some(9));
    assert_eq!(index.get(&first.id).unwrap(), None);
    drop(index);
    assert_eq!(open(&nested).checkpoint(), Some(9));

    let missing = dir.path().join("nowhere");
    assert!(matches!(PetitionIndex::open_read_only(&missing), Err(IndexError::Directory { .. })));
    std::fs::create_dir_all(&missing).unwrap();
    assert!(matches!(PetitionIndex::open_read_only(&missing), Err(IndexError::NoIndex { .. })));
}

#[test]
fn get_returns_the_stored_petition() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    let stored = petition("Tiếng ồn karaoke", "Hàng xóm hát karaoke sau 22 giờ.", "48", "20194", 5);
    index.apply(std::slice::from_ref(&stored), 1).unwrap();
    let found = index.get(&stored.id).unwrap().unwrap();
    assert_eq!(found.id, stored.id);
    assert_eq!(found.title, stored.title);
    assert_eq!(found.body, stored.body);
    assert_eq!(found.province_code, "48");
    assert_eq!(found.commune_code, "20194");
    assert_eq!(found.received_at, stored.received_at);
    assert_eq!(found.language.as_deref(), Some("vi"));
    assert_eq!(index.get(&uuid::Uuid::nil()).unwrap(), None);
}

#[test]
fn snippets_mark_matches_and_escape_html() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    let body = "Người dân <script>alert('x')</script> & hàng xóm phản ánh việc lấn chiếm đất công ở đầu ngõ.";
    let tricky = petition("Lấn chiếm", body, "01", "00004", 0);
    let long_body = format!("{} Cuối cùng là đất.", "Mở đầu dài dòng không liên quan. ".repeat(30));
    let long = petition("Bài dài", &long_body, "01", "00004", 1);
    let title_only = petition("Đất bỏ hoang", "Không có từ khoá trong nội dung.", "01", "00004", 2);
    index.apply(&[tricky.clone(), long.clone(), title_only.clone()], 1).unwrap();

    let results = search(&index, &SearchRequest::text("đất"));
    let snippet_of = |id| results.hits.iter().find(|hit| hit.id == id).unwrap().snippet.clone();
    let snippet = snippet_of(tricky.id);
    assert!(snippet.contains("<mark>đất</mark>"), "{snippet}");
    assert!(snippet.contains("&lt;script&gt;") && snippet.contains("&amp;"), "{snippet}");
    assert!(!snippet.contains("<script>"), "{snippet}");
    let snippet = snippet_of(long.id);
    assert!(snippet.starts_with('…') && snippet.contains("<mark>đất</mark>"), "{snippet}");
    // Folded matches are marked too: the syllable as written is kept.
    let snippet = search(&index, &SearchRequest::text("lan chiem")).hits[0].snippet.clone();
    assert!(snippet.contains("<mark>lấn</mark> <mark>chiếm</mark>"), "{snippet}");
    // Matched only in the title: the body's beginning, escaped.
    assert_eq!(snippet_of(title_only.id), "Không có từ khoá trong nội dung.");
}

#[test]
fn odd_input_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    index.apply(&[petition("Đất đai", "Tranh chấp đất đai (kéo dài) ở xã: A&B.", "01", "00004", 0)], 1).unwrap();
    let odd = [
        "",
        " ",
        "\"",
        "\"\"",
        "\"đất",
        "đất\"",
        "'",
        "H'Leo",
        "(",
        ")",
        "(đất",
        "[",
        "]",
        "[a TO b]",
        "{a TO *}",
        "{",
        "}",
        "AND",
        "OR",
        "NOT",
        "IN",
        "AND OR NOT",
        "đất AND",
        "OR đất",
        "NOT đất",
        "-đất",
        "+đất",
        "--",
        "-",
        "+",
        "!",
        ":",
        "::",
        "đất:",
        ":đất",
        "title:đất",
        "body_exact:đất",
        "id:x",
        "province:/01",
        "received_at:>2025",
        "đất^",
        "đất^100",
        "đất^-1",
        "đất^99999999999999",
        "\"đất đai\"~",
        "\"đất đai\"~2",
        "\"đất đai\"~99999999999",
        "*",
        "đ*",
        "?",
        "\\",
        "\\\\",
        "\\\"",
        "đất\\",
        "`",
        "~",
        "^",
        "a:b:c",
        "x IN [a b]",
        "\u{0301}",
        "\u{200b}",
        "\u{feff}đất",
        "🙂 đất",
        "\0",
        "\n\t",
        "(((((((((",
        "đất \"\" đai",
        "\"\" OR \"\"",
        "*:*",
    ];
    for q in odd {
        let results = index.search(&SearchRequest::text(q));
        assert!(results.is_ok(), "{q:?}: {results:?}");
    }
    assert_eq!(total(&index, "Lưu ý: đất"), 0, "`ý:` is no field, and `lưu` is not in the text");
    assert_eq!(total(&index, "xã: A&B"), 1);
    assert_eq!(total(&index, "(kéo dài)"), 1);
    assert_eq!(total(&index, "đất OR khôngcó"), 1);
    assert_eq!(total(&index, "đất -đai"), 0);
    let too_long = "đất ".repeat(crate::MAX_QUERY_CHARS);
    assert!(matches!(index.search(&SearchRequest::text(&too_long)), Err(IndexError::QueryTooLong { .. })));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn search_never_fails_on_any_text(
        q in "(\\PC|[\"'():^*~\\[\\]{}!+\\-\\\\ ]|AND|OR|NOT|IN|TO|đất|dat|title:){0,24}"
    ) {
        let index = shared_index();
        let results = index.search(&SearchRequest::text(&q));
        proptest::prop_assert!(results.is_ok(), "{:?}: {:?}", q, results);
    }
}

/// One small index shared by the property test's cases (opening one per case would dominate).
fn shared_index() -> &'static PetitionIndex {
    static SHARED: std::sync::OnceLock<(tempfile::TempDir, PetitionIndex)> = std::sync::OnceLock::new();
    let (_, index) = SHARED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let petitions = [
            petition("Đất đai", "Tranh chấp đất đai kéo dài.", "01", "00004", 0),
            petition("Tấm dát vàng", "Giải phóng mặt bằng chậm.", "79", "26734", 1),
        ];
        index.apply(&petitions, 1).unwrap();
        (dir, index)
    });
    index
}

#[test]
fn concurrent_applies_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..4i64)
        .map(|thread| {
            let index = Arc::clone(&index);
            std::thread::spawn(move || {
                for round in 0..3i64 {
                    let batch: Vec<Petition> = (0..5)
                        .map(|i| {
                            petition(
                                "Ô nhiễm tiếng ồn",
                                "Xưởng gỗ chạy đêm.",
                                PROVINCES[thread as usize % 3],
                                "00004",
                                thread * 100 + round * 10 + i,
                            )
                        })
                        .collect();
                    index.apply(&batch, thread * 10 + round).unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(index.num_docs(), 4 * 3 * 5);
    let facets: BTreeMap<_, _> = search(&index, &SearchRequest::text("tiếng ồn"))
        .province_facets
        .into_iter()
        .map(|f| (f.province_code, f.count))
        .collect();
    assert_eq!(facets, BTreeMap::from([("01".to_owned(), 30), ("48".to_owned(), 15), ("79".to_owned(), 15)]));
}

#[test]
fn index_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PetitionIndex>();
}

#[test]
fn append_adds_new_rows_once_and_refuses_a_version_already_applied() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    let first = vec![petition("Đường hỏng", "Đường liên xã xuống cấp", "01", "00004", 1)];
    index.append(&first, 3).unwrap();
    assert_eq!(index.num_docs(), 1);
    assert_eq!(index.checkpoint(), Some(3));
    let err = index.append(&first, 3).unwrap_err();
    assert!(matches!(err, crate::IndexError::AlreadyApplied { lake_version: 3, checkpoint: 3 }), "{err}");
    assert_eq!(index.num_docs(), 1, "a refused append adds nothing");
}

#[test]
fn lake_versions_added_apart_become_searchable_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    index.append(&[petition("Đèn đường", "Đèn đường hỏng", "01", "00004", 1)], 1).unwrap();
    index.add_new(&[petition("Bãi rác", "Bãi rác gây ô nhiễm", "01", "00004", 2)], 2).unwrap();
    index.add_new(&[petition("Nước sạch", "Thiếu nước sạch", "79", "26734", 3)], 3).unwrap();
    assert_eq!((index.num_docs(), index.checkpoint()), (1, Some(1)), "added but not committed");
    index.commit(3).unwrap();
    assert_eq!((index.num_docs(), index.checkpoint()), (3, Some(3)));
    assert_eq!(search(&index, &SearchRequest::text("bai rac")).total, 1);
    // A version the commit covered is refused, and a crash before a commit loses only the
    // uncommitted documents: the reopened index is at the last checkpoint, for the catch-up.
    assert!(matches!(index.add_new(&[], 2), Err(crate::IndexError::AlreadyApplied { .. })));
    index.add_new(&[petition("Lấn chiếm", "Lấn chiếm vỉa hè", "01", "00004", 4)], 4).unwrap();
    drop(index);
    let reopened = PetitionIndex::open_or_create(dir.path()).unwrap();
    assert_eq!((reopened.num_docs(), reopened.checkpoint()), (3, Some(3)));
}

#[test]
fn proximity_ranks_the_phrase_above_scattered_syllables() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    let scattered = petition(
        "Kiến nghị",
        "Đất của nhà tôi bị lấn, đất bị đào, con đường đai cũ hỏng, đai sắt gãy.",
        "01",
        "00004",
        1,
    );
    let together =
        petition("Kiến nghị", "Tranh chấp đất đai kéo dài nhiều năm chưa được giải quyết.", "01", "00004", 2);
    index.apply(&[scattered.clone(), together.clone()], 1).unwrap();
    let ranked = search(&index, &SearchRequest { proximity: true, ..SearchRequest::text("dat dai") });
    assert_eq!(ranked.total, 2);
    assert_eq!(ranked.hits[0].id, together.id, "the phrase ranks first with proximity");
    let plain = search(&index, &SearchRequest::text("dat dai"));
    assert_eq!(plain.total, 2, "proximity changes the order, never the matches");
}

#[test]
fn the_snippet_shows_where_the_syllables_stand_together() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    // "đại" (folded "dai") many times first; "đất đai" once, far into the body.
    let noise = "Trường đại học và đại lý, đại biểu, đại diện, đại hội. ".repeat(12);
    let body = format!("{noise}Gia đình tôi có tranh chấp đất đai với hàng xóm đã ba năm.");
    let petition = petition("Kiến nghị", &body, "01", "00004", 1);
    index.apply(std::slice::from_ref(&petition), 1).unwrap();
    let found = search(&index, &SearchRequest::text("dat dai"));
    let snippet = &found.hits[0].snippet;
    assert!(snippet.contains("<mark>đất</mark> <mark>đai</mark>"), "{snippet}");
    assert!(snippet.starts_with('…') && !snippet.starts_with("…ại"), "cut at a word: {snippet}");
    // One syllable: tantivy's best fragment, as before.
    let one = search(&index, &SearchRequest::text("dai"));
    assert!(one.hits[0].snippet.contains("<mark>đại</mark>"), "{}", one.hits[0].snippet);
}

#[test]
fn the_default_ranking_puts_syllables_held_together_first() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    // More of each syllable (BM25 prefers it), but never "đất đai": not about land.
    let scattered = petition(
        "Kiến nghị về đất, đường đai",
        "Đất của nhà tôi bị lấn, đất bị đào, đất lún; con đường đai cũ hỏng, đai sắt gãy, dẻo dai.",
        "01",
        "00004",
        1,
    );
    let together =
        petition("Kiến nghị", "Tranh chấp đất đai kéo dài nhiều năm chưa được giải quyết.", "01", "00004", 2);
    let in_title = petition("Đất đai bị lấn chiếm", "Đề nghị xem xét.", "01", "00004", 3);
    index.apply(&[scattered.clone(), together.clone(), in_title.clone()], 1).unwrap();
    let bm25 = search(&index, &SearchRequest { proximity: false, ..SearchRequest::text("dat dai") });
    assert_eq!(bm25.total, 3);
    let order: Vec<uuid::Uuid> = bm25.hits.iter().map(|hit| hit.id).collect();
    assert_eq!(order[2], scattered.id, "held together, in the body or the title, first: {:?}", bm25.hits);
    assert!(bm25.hits[2].score > bm25.hits[0].score.max(bm25.hits[1].score), "BM25 alone would rank it first");
    // Typed with diacritics, or the syllables in the other order: the same matches; reversed,
    // nothing holds them together, so BM25 alone orders them.
    assert_eq!(search(&index, &SearchRequest::text("đất đai")).hits[2].id, scattered.id);
    assert_eq!(search(&index, &SearchRequest::text("dai dat")).total, 3);
    // Pages read from the same order.
    let second = search(&index, &SearchRequest { offset: 1, limit: 1, ..SearchRequest::text("dat dai") });
    assert_eq!(second.hits.iter().map(|hit| hit.id).collect::<Vec<_>>(), [order[1]]);
    // One syllable, or explicit syntax: BM25 as it is.
    assert_eq!(search(&index, &SearchRequest::text("dai")).total, 3);
    assert_eq!(search(&index, &SearchRequest::text("dat OR dai")).total, 3);
}

#[test]
fn an_index_of_another_schema_is_recreated_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    {
        // An index as an older version might have left it: same directory, other fields.
        std::fs::create_dir_all(&path).unwrap();
        let mut builder = tantivy::schema::Schema::builder();
        let body = builder.add_text_field("body", tantivy::schema::TEXT);
        let index = tantivy::Index::create_in_dir(&path, builder.build()).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.add_document(tantivy::doc!(body => "đường hỏng")).unwrap();
        writer.commit().unwrap();
    }
    assert!(matches!(PetitionIndex::open_or_create(&path), Err(IndexError::SchemaMismatch { .. })));
    let (index, recreated) = PetitionIndex::open_or_recreate(&path).unwrap();
    assert!(recreated);
    assert_eq!((index.num_docs(), index.checkpoint()), (0, None));
    index.append(&[petition("Đường hỏng", "Đường liên xã bị hỏng", "01", "00004", 1)], 1).unwrap();
    drop(index);
    let (index, recreated) = PetitionIndex::open_or_recreate(&path).unwrap();
    assert!(!recreated);
    assert_eq!((index.num_docs(), index.checkpoint()), (1, Some(1)));
}

#[test]
fn topics_filter_and_facet() {
    let dir = tempfile::tempdir().unwrap();
    let index = open(dir.path());
    let mut petitions = Vec::new();
    for i in 0..6 {
        let mut p = petition("Thu hồi đất", &format!("Đề nghị bồi thường đất số {i}"), "01", "00004", i);
        if i < 4 {
            p.topic = Some("land".to_owned());
            p.topic_confidence = Some(1.0);
        } else if i == 4 {
            p.topic = Some("environment".to_owned());
        }
        petitions.push(p);
    }
    index.append(&petitions, 1).unwrap();
    let all = search(&index, &SearchRequest::text("đất"));
    assert_eq!(all.total, 6);
    let facets: Vec<(&str, u64)> = all.topic_facets.iter().map(|f| (f.topic.as_str(), f.count)).collect();
    assert_eq!(facets, [("land", 4), ("environment", 1)]);
    let land = search(&index, &SearchRequest { topic: Some("land".into()), ..SearchRequest::text("đất") });
    assert_eq!(land.total, 4);
    assert!(land.hits.iter().all(|hit| hit.topic.as_deref() == Some("land")));
    let none = search(&index, &SearchRequest { topic: Some("health".into()), ..SearchRequest::default() });
    assert_eq!(none.total, 0);
}

#[test]
fn a_search_reads_the_same_on_one_thread_and_on_several() {
    let dir = tempfile::tempdir().unwrap();
    let mut index = open(dir.path());
    let petitions = news_petitions(300).expect("news sample");
    // One commit per lake version: several segments to spread over the threads.
    for (version, chunk) in petitions.chunks(60).enumerate() {
        index.append(chunk, version as i64 + 1).unwrap();
    }
    assert!(index.reader.searcher().segment_readers().len() >= 3, "the index has several segments");
    let requests = [
        SearchRequest::text("đất đai"),
        SearchRequest::text("kinh te"),
        SearchRequest { province: Some("79".into()), ..SearchRequest::text("Hà Nội") },
        SearchRequest { offset: 7, limit: 11, ..SearchRequest::text("người") },
        SearchRequest { proximity: true, ..SearchRequest::text("xã hội") },
        SearchRequest { limit: 0, ..SearchRequest::text("công") },
        SearchRequest::default(),
    ];
    let read = |index: &PetitionIndex| -> Vec<SearchResults> { requests.iter().map(|r| search(index, r)).collect() };
    index.set_search_threads(1).unwrap();
    let alone = read(&index);
    index.set_search_threads(3).unwrap();
    let spread = read(&index);
    for ((request, alone), spread) in requests.iter().zip(&alone).zip(&spread) {
        assert!(alone.total > 0, "{request:?} finds nothing: the comparison would be empty");
        assert_eq!(alone, spread, "{request:?}");
    }
}

#[test]
fn without_the_syllables_together_the_snippet_shows_several_of_them_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let index = PetitionIndex::open_or_create(dir.path()).unwrap();
    // "đất" beside "dài" (folded "dai") once, then "đại" (folded "dai" too) many times; never
    // "đất đai" together.
    let filler = "Người dân mong sớm có câu trả lời của chính quyền các cấp. ".repeat(8);
    let noise = "Trường đại học và đại lý, đại biểu, đại diện, đại hội. ".repeat(4);
    let body = format!("Thửa đất của gia đình bị lấn chiếm kéo dài. {filler}{noise}");
    let petition = petition("Kiến nghị", &body, "01", "00004", 1);
    index.apply(std::slice::from_ref(&petition), 1).unwrap();
    let snippet = &search(&index, &SearchRequest::text("dat dai")).hits[0].snippet;
    assert!(snippet.contains("<mark>đất</mark>") && snippet.contains("<mark>dài</mark>"), "{snippet}");
    assert!(!snippet.contains("<mark>đại</mark>"), "not the passage where one syllable repeats: {snippet}");
}
