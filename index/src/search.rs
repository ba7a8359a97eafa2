//! Search: from a [`SearchRequest`] to ranked, highlighted [`SearchResults`].
//!
//! Ranking is BM25 over four fields. A term typed with diacritics matches both the exact and the
//! folded view of a petition that has it as typed, but only the folded view of one that differs
//! in diacritics, so with the exact view boosted "đất" ranks before "dát" and "dật". A term typed
//! without diacritics matches the folded view of all of them equally.
//!
//! Vietnamese words are several syllables ("đất đai" is land; "đất" and "dẻo dai" apart are
//! not), so for a query of several plain syllables the best [`PHRASE_RESCORE_WINDOW`] matches by
//! BM25 are reordered: those holding the syllables together, in the order typed, in the title
//! or the body, come first. Only those documents' positions are read, so this costs about what
//! BM25 alone does; `proximity` instead boosts the phrase over every match.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, FacetCollector, FacetCounts, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::schema::{Facet, Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, Order, Searcher, TantivyDocument, Term};
use tracing::debug;
use uuid::Uuid;
use voxpop_schema::text;

use crate::error::{IndexError, IndexResult};
use crate::index::PetitionIndex;
use crate::schema::{PetitionFields, to_tantivy_date};

/// Most hits returned by one search; larger `limit`s are capped to this.
pub const MAX_LIMIT: usize = 100;
/// Deepest page reachable with `offset`: deeper paging costs memory per search and no reader
/// pages that far; narrow the search with filters instead.
pub const MAX_OFFSET: usize = 10_000;
/// Longest accepted query text, in characters.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// `limit` of a request that does not say.
pub const DEFAULT_LIMIT: usize = 20;

/// How much more a match in the exact view (diacritics as typed) counts than a folded match.
pub const EXACT_BOOST: f32 = 2.0;
/// Extra weight for documents holding a multi-syllable query as a phrase, on top of the terms.
pub const PHRASE_BOOST: f32 = 1.5;
/// How much more a match in the title counts than one in the body: a title names the problem.
pub const TITLE_BOOST: f32 = 2.0;
/// Best BM25 matches of a multi-syllable query that the default ranking reorders, those holding
/// the syllables together first: more than a reader pages through, few enough that reading
/// their positions costs little.
pub const PHRASE_RESCORE_WINDOW: usize = 200;

/// Longest snippet, in bytes of the body (tantivy measures bytes): about 120 Vietnamese letters.
const SNIPPET_MAX_BYTES: usize = 300;

/// A search over petitions. Text and filters combine with AND.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchRequest {
    /// Query text; empty matches every petition (then only the filters apply, newest first).
    /// Syllables combine with AND; `"..."` is a phrase, `OR` and `-word` work as usual.
    pub q: String,
    /// Province code, e.g. `01`.
    pub province: Option<String>,
    /// Commune code (2025), e.g. `00004`.
    pub commune: Option<String>,
    /// Topic code of the taxonomy, e.g. `land`.
    pub topic: Option<String>,
    /// Handling state, e.g. `answered`.
    pub state: Option<String>,
    /// Received at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Received strictly before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Hits to return, capped at [`MAX_LIMIT`]; 0 returns only `total` and facets.
    pub limit: usize,
    /// Hits to skip, capped at [`MAX_OFFSET`].
    pub offset: usize,
    /// Boost documents holding a multi-syllable query as a phrase over every match, not only
    /// among the best [`PHRASE_RESCORE_WINDOW`] as the default ranking does: at about 2-3 times
    /// the latency on broad queries (positions are read for every match), see docs/BENCHMARKS.md.
    pub proximity: bool,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            q: String::new(),
            province: None,
            commune: None,
            topic: None,
            state: None,
            from: None,
            to: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
            proximity: false,
        }
    }
}

impl SearchRequest {
    /// A request for `q` with no filters and the default limit.
    pub fn text(q: &str) -> Self {
        SearchRequest { q: q.to_owned(), ..SearchRequest::default() }
    }
}

/// One matching petition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: Uuid,
    /// The title as written (plain text, not HTML).
    pub title: String,
    /// HTML: a fragment of the body, escaped, with matched syllables in `<mark>..</mark>`; the
    /// beginning of the body when the match is only in the title or the query is empty.
    pub snippet: String,
    pub province_code: String,
    pub commune_code: String,
    pub received_at: DateTime<Utc>,
    pub language: Option<String>,
    pub topic: Option<String>,
    /// The handling state (`received`, `accepted`, ...).
    pub state: String,
    /// BM25 relevance; 0 when the query is empty (results are then newest first).
    pub score: f32,
}

/// Hits in one province among all matches (not only the returned page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FacetCount {
    pub province_code: String,
    pub count: u64,
}

/// The answer to a [`SearchRequest`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResults {
    /// All matching petitions, however many were returned.
    pub total: usize,
    pub hits: Vec<Hit>,
    /// Matches per province, most first (ties by code).
    pub province_facets: Vec<FacetCount>,
    /// Matches per topic, most first (ties by code); unclassified petitions are not counted.
    pub topic_facets: Vec<TopicCount>,
}

/// Hits filed under one topic among all matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicCount {
    pub topic: String,
    pub count: u64,
}

pub(crate) fn build_query_parser(index: &Index, fields: &PetitionFields) -> QueryParser {
    let mut parser =
        QueryParser::for_index(index, vec![fields.title, fields.title_exact, fields.body, fields.body_exact]);
    // "đất đai" should need both syllables: users type words, not alternatives.
    parser.set_conjunction_by_default();
    parser.set_field_boost(fields.title, TITLE_BOOST);
    parser.set_field_boost(fields.title_exact, TITLE_BOOST * EXACT_BOOST);
    parser.set_field_boost(fields.body, 1.0);
    parser.set_field_boost(fields.body_exact, EXACT_BOOST);
    parser
}

/// Rewrites citizen input so that tantivy's query grammar sees only the syntax we offer: words,
/// `"phrases"`, `+`/`-` prefixes and `AND`/`OR`/`NOT`. Everything else that the grammar would
/// read as syntax (`field:`, ranges, boosts, wildcards, `'quotes'`, sets) is escaped, so
/// "Lưu ý: đường hỏng" is three words rather than a search in a field named "ý".
fn escape_query(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len() + 8);
    let mut in_phrase = false;
    for ch in raw.chars() {
        match ch {
            '"' => {
                in_phrase = !in_phrase;
                escaped.push(ch);
            }
            // A backslash in a phrase could escape its closing quote; the tokenizer ignores it
            // anyway.
            '\\' if in_phrase => escaped.push(' '),
            _ if in_phrase => escaped.push(ch),
            ':' | '^' | '`' | '{' | '}' | '[' | ']' | '(' | ')' | '\'' | '!' | '*' | '~' | '\\' | '<' | '>' | '=' => {
                escaped.push('\\');
                escaped.push(ch);
            }
            _ => escaped.push(ch),
        }
    }
    if in_phrase {
        // An unclosed quote: the user meant a phrase up to the end.
        escaped.push('"');
    }
    // `IN` starts a set (`field: IN [..]`); as a plain word it means "in", which is what the
    // tokenizer makes of it anyway.
    escaped.split_whitespace().map(|word| if word == "IN" { "in" } else { word }).collect::<Vec<_>>().join(" ")
}

/// A filter clause: restricts the matches without changing their scores.
fn filter(query: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(query, 0.0)))
}

fn term_filter(field: Field, value: &str) -> (Occur, Box<dyn Query>) {
    filter(Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic)))
}

impl PetitionIndex {
    /// The query text as a tantivy query; `None` when it is empty (match all).
    fn text_query(&self, q: &str, proximity: bool) -> IndexResult<Option<Box<dyn Query>>> {
        let chars = q.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(IndexError::QueryTooLong { chars, max: MAX_QUERY_CHARS });
        }
        // Queries arrive in NFC or NFD depending on the keyboard; the stored text is NFC.
        let normalised = text::nfc(q.trim());
        if normalised.is_empty() {
            return Ok(None);
        }
        let (query, errors) = self.query_parser.parse_query_lenient(&escape_query(&normalised));
        if !errors.is_empty() {
            // Not the user's problem: lenient parsing already made the best of it.
            debug!(q = %normalised, errors = ?errors, "query parsed leniently");
        }
        // Vietnamese words are several syllables ("đất đai", "giải phóng mặt bằng"): documents
        // where the query's syllables stand together as typed rank above those where they are
        // scattered. Only for plain queries; explicit syntax is left as the user wrote it.
        let syllables = normalised.split_whitespace().count();
        let plain = !normalised.contains(['"', '+', '-', '(', ')'])
            && !normalised.split_whitespace().any(|word| matches!(word, "AND" | "OR" | "NOT"));
        if proximity && syllables >= 2 && plain {
            let (phrase, _) = self.query_parser.parse_query_lenient(&format!("\"{}\"", escape_query(&normalised)));
            let boosted: Box<dyn Query> = Box::new(BoostQuery::new(phrase, PHRASE_BOOST));
            return Ok(Some(Box::new(BooleanQuery::new(vec![(Occur::Must, query), (Occur::Should, boosted)]))));
        }
        Ok(Some(query))
    }

    /// The folded syllables of a plain query of at least two syllables, which the default ranking
    /// looks for together; `None` for one syllable or a query with explicit syntax.
    fn phrase_syllables(&self, q: &str) -> Option<Vec<String>> {
        let normalised = text::nfc(q.trim());
        let plain = !normalised.contains(['"', '+', '-', '(', ')'])
            && !normalised.split_whitespace().any(|word| matches!(word, "AND" | "OR" | "NOT"));
        let syllables = crate::analysis::terms(crate::analysis::View::Folded, &normalised);
        (plain && syllables.len() >= 2).then_some(syllables)
    }

    /// For each of `hits`, whether its title or body holds `syllables` together, in order, as
    /// the folded view indexed them: read from the positions of those documents alone.
    fn hold_together(
        &self,
        searcher: &Searcher,
        syllables: &[String],
        hits: &[(f32, DocAddress)],
    ) -> IndexResult<Vec<bool>> {
        use tantivy::DocSet;
        use tantivy::postings::Postings;
        let mut together = vec![false; hits.len()];
        let mut order: Vec<usize> = (0..hits.len()).collect();
        order.sort_by_key(|&i| (hits[i].1.segment_ord, hits[i].1.doc_id));
        let mut positions: Vec<Vec<u32>> = vec![Vec::new(); syllables.len()];
        for segment in order.chunk_by(|&a, &b| hits[a].1.segment_ord == hits[b].1.segment_ord) {
            let reader = searcher.segment_reader(hits[segment[0]].1.segment_ord);
            for field in [self.fields.title, self.fields.body] {
                let inverted = reader.inverted_index(field)?;
                let mut postings = Vec::with_capacity(syllables.len());
                for syllable in syllables {
                    let term = Term::from_field_text(field, syllable);
                    match inverted
                        .read_postings(&term, IndexRecordOption::WithFreqsAndPositions)
                        .map_err(tantivy::TantivyError::from)?
                    {
                        Some(found) => postings.push(found),
                        None => break,
                    }
                }
                if postings.len() < syllables.len() {
                    continue;
                }
                for &i in segment {
                    let doc = hits[i].1.doc_id;
                    if together[i] {
                        continue;
                    }
                    let mut all_there = true;
                    for (list, found) in postings.iter_mut().zip(positions.iter_mut()) {
                        if list.doc() < doc {
                            list.seek(doc);
                        }
                        if list.doc() != doc {
                            all_there = false;
                            break;
                        }
                        list.positions(found);
                    }
                    together[i] = all_there
                        && positions[0].iter().any(|&start| {
                            positions[1..]
                                .iter()
                                .enumerate()
                                .all(|(k, next)| next.binary_search(&(start + k as u32 + 1)).is_ok())
                        });
                }
            }
        }
        Ok(together)
    }

    fn build_query(&self, request: &SearchRequest) -> IndexResult<(Box<dyn Query>, bool)> {
        let text_query = self.text_query(&request.q, request.proximity)?;
        let ranked = text_query.is_some();
        if let (Some(from), Some(to)) = (request.from, request.to)
            && from >= to
        {
            return Ok((Box::new(EmptyQuery), ranked));
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        clauses.push((Occur::Must, text_query.unwrap_or_else(|| Box::new(AllQuery))));
        if let Some(province) = &request.province {
            clauses.push(term_filter(self.fields.province_code, province));
        }
        if let Some(commune) = &request.commune {
            clauses.push(term_filter(self.fields.commune_code, commune));
        }
        if let Some(topic) = &request.topic {
            clauses.push(term_filter(self.fields.topic, topic));
        }
        if let Some(state) = &request.state {
            clauses.push(term_filter(self.fields.state, state));
        }
        if request.from.is_some() || request.to.is_some() {
            let field = self.fields.received_at;
            let lower = request
                .from
                .map_or(Bound::Unbounded, |at| Bound::Included(Term::from_field_date(field, to_tantivy_date(at))));
            let upper = request
                .to
                .map_or(Bound::Unbounded, |at| Bound::Excluded(Term::from_field_date(field, to_tantivy_date(at))));
            clauses.push(filter(Box::new(RangeQuery::new(lower, upper))));
        }
        Ok((Box::new(BooleanQuery::new(clauses)), ranked))
    }

    /// Runs a search. Never fails on what a user can type (except a query over
    /// [`MAX_QUERY_CHARS`]); fails only when the index cannot be read.
    pub fn search(&self, request: &SearchRequest) -> IndexResult<SearchResults> {
        let (query, ranked) = self.build_query(request)?;
        let searcher = self.reader.searcher();
        let limit = request.limit.min(MAX_LIMIT);
        let offset = request.offset.min(MAX_OFFSET);
        let mut facets = FacetCollector::for_field("province");
        facets.add_facet(Facet::root());
        let mut topics = FacetCollector::for_field("topic_facet");
        topics.add_facet(Facet::root());
        let counted = (Count, facets, topics);

        // A query of several plain syllables: they are looked for together (ranking, snippets).
        let phrase = if ranked { self.phrase_syllables(&request.q) } else { None };
        type Page = Vec<(f32, DocAddress)>;
        let ((total, facet_counts, topic_counts), page): ((usize, FacetCounts, FacetCounts), Page) = if limit == 0 {
            (self.collect(&searcher, &*query, &counted)?, Vec::new())
        } else if let Some(syllables) = phrase.as_deref().filter(|_| !request.proximity) {
            // The window is ranked again, documents holding the syllables together first (in
            // BM25 order among themselves), then the rest of the window; past the window, BM25
            // order: every page of a search reads from the same order.
            let top = TopDocs::with_limit(PHRASE_RESCORE_WINDOW.max(offset + limit)).order_by_score();
            let (counts, mut best) = self.collect(&searcher, &*query, &(counted, top))?;
            let window = PHRASE_RESCORE_WINDOW.min(best.len());
            let together = self.hold_together(&searcher, syllables, &best[..window])?;
            let mut reranked: Vec<((f32, DocAddress), bool)> = best.drain(..window).zip(together).collect();
            reranked.sort_by_key(|(_, together)| !together);
            let order = reranked.into_iter().map(|(hit, _)| hit).chain(best);
            (counts, order.skip(offset).take(limit).collect())
        } else if ranked {
            let top = TopDocs::with_limit(limit).and_offset(offset).order_by_score();
            self.collect(&searcher, &*query, &(counted, top))?
        } else {
            // Nothing to rank by: browsing is newest first.
            let top = TopDocs::with_limit(limit)
                .and_offset(offset)
                .order_by_fast_field::<tantivy::DateTime>("received_at", Order::Desc);
            let (counts, newest) = self.collect(&searcher, &*query, &(counted, top))?;
            (counts, newest.into_iter().map(|(_, address)| (0.0, address)).collect())
        };

        let hits = self.hits(&searcher, &*query, page, phrase.as_deref())?;
        Ok(SearchResults {
            total,
            hits,
            province_facets: province_facets(&facet_counts),
            topic_facets: topic_facets(&topic_counts),
        })
    }

    /// Runs `collector` over the matches of `query`, the segments read on the index's search
    /// threads.
    fn collect<C: tantivy::collector::Collector>(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        collector: &C,
    ) -> IndexResult<C::Fruit> {
        let scoring = if collector.requires_scoring() {
            tantivy::query::EnableScoring::enabled_from_searcher(searcher)
        } else {
            tantivy::query::EnableScoring::disabled_from_searcher(searcher)
        };
        Ok(searcher.search_with_executor(query, collector, &self.executor, scoring)?)
    }

    /// The hits of `page`, each with a snippet: around the first place the body holds `phrase`
    /// (a multi-syllable query's syllables together) when it does, so that "dat dai" shows the
    /// petition's "đất đai" rather than a passage dense with "đại"; else around a stretch holding
    /// several different syllables of the query; elsewhere tantivy's best fragment
    /// ([`snippet_span`]).
    fn hits(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        page: Vec<(f32, DocAddress)>,
        phrase: Option<&[String]>,
    ) -> IndexResult<Vec<Hit>> {
        if page.is_empty() {
            return Ok(Vec::new());
        }
        let mut snippets = SnippetGenerator::create(searcher, query, self.fields.body)?;
        snippets.set_max_num_chars(SNIPPET_MAX_BYTES);
        let mut hits = Vec::with_capacity(page.len());
        for (score, address) in page {
            let doc: TantivyDocument = searcher.doc(address)?;
            let stored = self.fields.stored(&doc)?;
            let snippet = match phrase.and_then(|syllables| snippet_span(&stored.body, syllables)) {
                Some(span) => snippet_around(&snippets, &stored.body, span),
                None => snippet_html(&snippets, &stored.body),
            };
            hits.push(Hit {
                id: stored.id,
                title: stored.title,
                snippet,
                province_code: stored.province_code,
                commune_code: stored.commune_code,
                received_at: stored.received_at,
                language: stored.language,
                topic: stored.topic,
                state: stored.state,
                score,
            });
        }
        Ok(hits)
    }
}

fn province_facets(counts: &FacetCounts) -> Vec<FacetCount> {
    let mut facets: Vec<FacetCount> = counts
        .get(Facet::root())
        .filter_map(|(facet, count)| {
            let province_code = facet.to_path().last()?.to_string();
            Some(FacetCount { province_code, count })
        })
        .collect();
    facets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.province_code.cmp(&b.province_code)));
    facets
}

fn topic_facets(counts: &FacetCounts) -> Vec<TopicCount> {
    let mut facets: Vec<TopicCount> = counts
        .get(Facet::root())
        .filter_map(|(facet, count)| Some(TopicCount { topic: facet.to_path().last()?.to_string(), count }))
        .collect();
    facets.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.topic.cmp(&b.topic)));
    facets
}

/// The best body fragment with matches marked; the start of the body when nothing in the body
/// matched. `…` marks text cut off on either side.
fn snippet_html(generator: &SnippetGenerator, body: &str) -> String {
    let mut snippet = generator.snippet(body);
    if snippet.is_empty() {
        let mut end = SNIPPET_MAX_BYTES.min(body.len());
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        // Cut at a space rather than inside a syllable, when there is one.
        if end < body.len()
            && let Some(space) = body[..end].rfind(char::is_whitespace)
        {
            end = space;
        }
        let mut html = html_escape(body[..end].trim_end());
        if end < body.len() {
            html.push('…');
        }
        return html;
    }
    snippet.set_snippet_prefix_postfix("<mark>", "</mark>");
    let range = snippet.fragment_range();
    let mut html = String::new();
    if range.start > 0 {
        html.push('…');
    }
    html.push_str(&snippet.to_html());
    if range.end < body.len() {
        html.push('…');
    }
    html
}

/// How far into a body a snippet looks for the query's syllables together: most petitions are
/// shorter, and a page of long ones stays cheap to show (the body is tokenized up to here).
const PHRASE_SNIPPET_SCAN_BYTES: usize = 8 * 1024;

/// Byte range a multi-syllable query's snippet is taken around, within the body's first
/// [`PHRASE_SNIPPET_SCAN_BYTES`], as the folded view reads it: the first place the body holds
/// `syllables` together, in order; else the first stretch of a snippet's length that holds the
/// most different ones (at least two), so that "dat dai" shows "đất" beside "dài" rather than a
/// passage where "đại" repeats. `None` when no stretch holds two.
fn snippet_span(text: &str, syllables: &[String]) -> Option<std::ops::Range<usize>> {
    use tantivy::tokenizer::TokenStream;
    let mut analyzer = crate::analysis::analyzer(crate::analysis::View::Folded);
    let mut stream = analyzer.token_stream(text);
    // The last `syllables.len()` tokens, as (text, start, end).
    let mut recent: std::collections::VecDeque<(String, usize, usize)> = std::collections::VecDeque::new();
    // Each different syllable of the query, and where the body last had it.
    let mut wanted: Vec<(&str, Option<usize>)> = Vec::new();
    for syllable in syllables {
        if !wanted.iter().any(|(seen, _)| seen == syllable) {
            wanted.push((syllable, None));
        }
    }
    let mut best: Option<(usize, std::ops::Range<usize>)> = None;
    while let Some(token) = stream.next() {
        if token.offset_from > PHRASE_SNIPPET_SCAN_BYTES {
            break;
        }
        if recent.len() == syllables.len() {
            recent.pop_front();
        }
        recent.push_back((token.text.clone(), token.offset_from, token.offset_to));
        if recent.len() == syllables.len() && recent.iter().zip(syllables).all(|((text, _, _), want)| text == want) {
            return Some(recent.front()?.1..recent.back()?.2);
        }
        let Some(found) = wanted.iter_mut().find(|(syllable, _)| *syllable == token.text) else {
            continue;
        };
        found.1 = Some(token.offset_from);
        let window_start = token.offset_to.saturating_sub(SNIPPET_MAX_BYTES);
        let starts: Vec<usize> = wanted.iter().filter_map(|(_, at)| *at).filter(|at| *at >= window_start).collect();
        if starts.len() >= 2 && best.as_ref().is_none_or(|(count, _)| starts.len() > *count) {
            let first = starts.iter().copied().min().unwrap_or(token.offset_from);
            best = Some((starts.len(), first..token.offset_to));
        }
    }
    best.map(|(_, span)| span)
}

/// A snippet of `body` around `span`: tantivy's best fragment within about a snippet's length
/// either side of it, which holds it.
fn snippet_around(generator: &SnippetGenerator, body: &str, span: std::ops::Range<usize>) -> String {
    let floor = |mut at: usize| {
        while !body.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let reach = SNIPPET_MAX_BYTES.saturating_sub(span.len()) / 2;
    let mut start = floor(span.start.saturating_sub(reach));
    // Begin at a word, not inside one.
    if start > 0
        && let Some(space) = body[start..span.start].find(char::is_whitespace)
    {
        start += space + 1;
    }
    let end = floor((span.end + reach).min(body.len()));
    let mut snippet = generator.snippet(&body[start..end]);
    if snippet.is_empty() {
        return snippet_html(generator, body);
    }
    snippet.set_snippet_prefix_postfix("<mark>", "</mark>");
    let range = snippet.fragment_range();
    let mut html = String::new();
    if start + range.start > 0 {
        html.push('…');
    }
    html.push_str(&snippet.to_html());
    if start + range.end < body.len() {
        html.push('…');
    }
    html
}

/// Escapes like tantivy's snippet HTML (`& < > " '`): for text shown outside a snippet, here and
/// in the web pages.
pub fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_phrases_and_neutralises_syntax() {
        assert_eq!(escape_query("Lưu ý: đường hỏng"), "Lưu ý\\: đường hỏng");
        assert_eq!(escape_query("\"giải phóng mặt bằng\""), "\"giải phóng mặt bằng\"");
        assert_eq!(escape_query("\"mở ngoặc"), "\"mở ngoặc\"");
        assert_eq!(escape_query("H'Leo [a TO b]^2"), "H\\'Leo \\[a TO b\\]\\^2");
        assert_eq!(escape_query("made IN vietnam"), "made in vietnam");
        assert_eq!(escape_query("\"a\\\" b"), "\"a \" b");
    }

    #[test]
    fn html_escape_matches_tantivy() {
        assert_eq!(html_escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;");
    }
}
