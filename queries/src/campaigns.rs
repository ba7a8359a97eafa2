//! Campaigns: many citizens, one issue.
//!
//! When fifty households of one commune write about the same landfill, leaders should read one
//! line ("50 petitions, 45 citizens, xã X, since 1 September") rather than fifty. Such petitions
//! are rarely identical: names, house numbers and a word or two change from one to the next. This
//! module groups them by near-duplicate detection with MinHash and locality-sensitive hashing
//! (LSH), in time roughly linear in the number of petitions.
//!
//! # Method
//!
//! 1. **Shingles.** A petition's text (title and body) is cut into folded, lower-cased syllables
//!    ([`voxpop_schema::topics::folded_syllables`]), so "Bãi rác" and "bai rac" agree. Its shingles are the runs of
//!    [`SHINGLE_SYLLABLES`] consecutive syllables; a text with fewer syllables is one shingle.
//!    Two petitions are as similar as the Jaccard index of their shingle sets.
//! 2. **MinHash.** Each shingle is hashed with a fixed, seeded 64-bit hash (FNV-1a over the bytes
//!    of each syllable, finished with the splitmix64 mixer). A signature of `num_hashes` values is
//!    built by one permutation hashing with densification (Shrivastava & Li, 2014): a second mix
//!    of each shingle's hash picks one of `num_hashes` bins (its high half) and competes for that
//!    bin's minimum (its low half); an empty bin borrows the value of the nearest non-empty bin to
//!    its right, mixed with the distance. Two signatures agree in a bin with probability equal to
//!    the Jaccard index `J` of the shingle sets (the smallest shingle of the union that falls in
//!    the bin, or in the bin it borrows from, is shared), as with `num_hashes` independent hash
//!    functions, at one hash per shingle instead of `num_hashes`. The fraction of agreeing bins
//!    estimates `J` with standard error about `sqrt(J(1-J)/num_hashes)` (about 0.04 at J = 0.6
//!    with 128 bins). Nothing depends on the process, the platform or the input order: the same
//!    petitions give the same campaigns everywhere.
//! 3. **Banding.** The signature is cut into `bands` bands of `r = num_hashes / bands` rows;
//!    petitions whose band agrees in all `r` rows share a bucket and become candidate pairs. A
//!    pair with Jaccard index `J` becomes a candidate with probability `1 - (1 - J^r)^bands`. With
//!    the defaults (32 bands of 4 rows) that is 0.99 at J = 0.6, 0.87 at J = 0.5, 0.23 at
//!    J = 0.3 and 0.05 at J = 0.2: the curve rises steepest near `(1/bands)^(1/r)` ≈ 0.42, well
//!    below the threshold, so true near-duplicates are almost never missed, while the
//!    dissimilar candidates cost one signature comparison each.
//! 4. **Verification.** A candidate pair is linked when its estimated Jaccard index reaches
//!    `threshold` (default 0.6: petitions that copy a shared text and change names, numbers and a
//!    few words stay well above it, while two different petitions on the same subject, sharing
//!    vocabulary but not sentences, are far below it). Linked petitions are joined with
//!    union-find, so a campaign is a connected group: every member is near some other member,
//!    not necessarily near all of them.
//!
//! # Cost and guards
//!
//! Hashing is linear in the text; banding sorts `bands` arrays of `n` keys; verification costs
//! one signature comparison per candidate pair, skipped when the pair is already joined. A
//! bucket of many petitions (a form letter, boilerplate, a campaign of thousands) would make
//! every pair a candidate, so each member of a bucket is compared with at most
//! [`MAX_BUCKET_PEERS`] earlier members: the bucket's first member and its nearest
//! predecessors (in the order of receipt). A campaign of any size still forms, since each of its
//! members links to its neighbours; the bound only drops comparisons that a bucket of unrelated
//! petitions would have wasted.
//!
//! A petition without any letter or digit has no shingles and joins no campaign.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use voxpop_schema::topics::for_each_folded_syllable;

/// Syllables per shingle: three syllables carry a phrase ("bãi rác thải"), not just a word.
pub const SHINGLE_SYLLABLES: usize = 3;

/// Upper bound on `num_hashes` (memory: 4 bytes per hash per petition).
pub const MAX_HASHES: usize = 1024;

/// Each member of an LSH bucket is compared with at most this many earlier members (see the
/// module documentation).
pub const MAX_BUCKET_PEERS: usize = 128;

/// Seed of every hash in this module; changing it changes signatures, not the expected results.
const SEED: u64 = 0x766f_7870_6f70_2d63;

/// One petition as clustering needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignDoc {
    pub id: Uuid,
    /// Title and body, e.g. `format!("{title} {body}")`.
    pub text: String,
    /// A stable key of the citizen (a normalised phone number or e-mail address); `None` when
    /// anonymous. A blank key counts as anonymous.
    pub submitter: Option<String>,
    pub province_code: String,
    pub commune_code: String,
    pub received_at: DateTime<Utc>,
}

/// How petitions are grouped; see the module documentation for the meaning of each value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CampaignOptions {
    /// Estimated Jaccard index of shingle sets at or above which two petitions are linked, in
    /// `(0, 1]`.
    pub threshold: f64,
    /// Smallest group reported as a campaign (at least 2).
    pub min_size: usize,
    /// MinHash signature length, 1..=[`MAX_HASHES`].
    pub num_hashes: usize,
    /// LSH bands; must divide `num_hashes`.
    pub bands: usize,
}

impl Default for CampaignOptions {
    fn default() -> CampaignOptions {
        CampaignOptions { threshold: 0.6, min_size: 3, num_hashes: 128, bands: 32 }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CampaignError {
    #[error("threshold must be a number in (0, 1], got {0}")]
    Threshold(f64),
    #[error("min_size must be at least 2, got {0}")]
    MinSize(usize),
    #[error("num_hashes must be between 1 and {MAX_HASHES}, got {0}")]
    NumHashes(usize),
    #[error("bands must be at least 1 and divide num_hashes ({num_hashes}), got {bands}")]
    Bands { bands: usize, num_hashes: usize },
    #[error("too many petitions to cluster at once: {0}")]
    TooManyDocs(usize),
}

impl CampaignOptions {
    /// Checks every value; [`find_campaigns`] does it before any work.
    pub fn validate(&self) -> Result<(), CampaignError> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(CampaignError::Threshold(self.threshold));
        }
        if self.min_size < 2 {
            return Err(CampaignError::MinSize(self.min_size));
        }
        if self.num_hashes == 0 || self.num_hashes > MAX_HASHES {
            return Err(CampaignError::NumHashes(self.num_hashes));
        }
        if self.bands == 0 || !self.num_hashes.is_multiple_of(self.bands) {
            return Err(CampaignError::Bands { bands: self.bands, num_hashes: self.num_hashes });
        }
        Ok(())
    }
}

/// A group of near-duplicate petitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    /// Number of petitions.
    pub size: usize,
    /// Distinct citizens: distinct submitter keys, each anonymous petition counted as its own
    /// citizen.
    pub distinct_submitters: usize,
    /// Province codes of the members, sorted, without duplicates.
    pub provinces: Vec<String>,
    /// Commune codes of the members, sorted, without duplicates.
    pub communes: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The member with the highest mean estimated similarity to the other members (the earliest
    /// received among equals): the petition to read for the whole campaign.
    pub representative: Uuid,
    /// Every member, in order of receipt (ties by id).
    pub members: Vec<Uuid>,
}

/// Groups near-duplicate petitions into campaigns of at least `options.min_size` members.
///
/// Campaigns come largest first, then earliest `first_seen`, then by representative id. The
/// result depends only on the set of petitions, not on their order in `docs`.
pub fn find_campaigns(docs: &[CampaignDoc], options: &CampaignOptions) -> Result<Vec<Campaign>, CampaignError> {
    options.validate()?;
    if docs.len() > u32::MAX as usize {
        return Err(CampaignError::TooManyDocs(docs.len()));
    }
    // Canonical order (receipt time, id, text): everything below iterates in this order, which
    // makes the result independent of the input order.
    let mut order: Vec<usize> = (0..docs.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&docs[a], &docs[b]);
        (a.received_at, a.id, &a.text).cmp(&(b.received_at, b.id, &b.text))
    });

    let hasher = MinHasher::new(options.num_hashes);
    let k = options.num_hashes;
    // Signatures of the petitions that have shingles; `signed[i]` is the canonical position of
    // the i-th signature.
    let mut signatures: Vec<u32> = Vec::new();
    let mut signed: Vec<usize> = Vec::new();
    let mut shingles: Vec<u64> = Vec::new();
    for (position, &doc) in order.iter().enumerate() {
        shingle_hashes(&docs[doc].text, &mut shingles);
        if shingles.is_empty() {
            continue;
        }
        let start = signatures.len();
        signatures.resize(start + k, u32::MAX);
        hasher.sign(&shingles, &mut signatures[start..]);
        signed.push(position);
    }
    let n = signed.len();
    let signature = |i: usize| &signatures[i * k..(i + 1) * k];
    // Integer form of the threshold: linked when `matches >= required`.
    let required = ((options.threshold * k as f64) - 1e-9).ceil().max(1.0) as usize;
    let similar = |a: usize, b: usize| agreement(signature(a), signature(b)) >= required;

    let mut groups = UnionFind::new(n);
    let rows = k / options.bands;
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(n);
    for band in 0..options.bands {
        keys.clear();
        for i in 0..n {
            let slice = &signature(i)[band * rows..(band + 1) * rows];
            keys.push((band_key(band, slice), i as u32));
        }
        keys.sort_unstable();
        let mut start = 0;
        while start < keys.len() {
            let mut end = start + 1;
            while end < keys.len() && keys[end].0 == keys[start].0 {
                end += 1;
            }
            let bucket = &keys[start..end];
            for (j, &(_, member)) in bucket.iter().enumerate().skip(1) {
                let member = member as usize;
                let first = bucket[0].1 as usize;
                // The bucket's first member, then up to MAX_BUCKET_PEERS - 1 nearest predecessors.
                let nearest = j.saturating_sub(MAX_BUCKET_PEERS - 1).max(1);
                let peers = std::iter::once(first).chain(bucket[nearest..j].iter().rev().map(|&(_, p)| p as usize));
                for peer in peers {
                    if groups.find(peer) != groups.find(member) && similar(peer, member) {
                        groups.union(peer, member);
                    }
                }
            }
            start = end;
        }
    }

    // Members of each group, in canonical order (signature indexes ascend with position).
    let mut by_root: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        let root = groups.find(i);
        by_root[root].push(i);
    }
    let mut campaigns: Vec<Campaign> = by_root
        .into_iter()
        .filter(|members| members.len() >= options.min_size)
        .map(|members| {
            let central = members[most_central(&members, &signature, k)];
            let docs_of = |i: usize| &docs[order[signed[i]]];
            describe(members.iter().map(|&i| docs_of(i)), docs_of(central).id)
        })
        .collect();
    campaigns.sort_by(|a, b| {
        b.size.cmp(&a.size).then(a.first_seen.cmp(&b.first_seen)).then(a.representative.cmp(&b.representative))
    });
    Ok(campaigns)
}

/// The campaign made of `members` (in canonical order, at least one).
fn describe<'a>(members: impl Iterator<Item = &'a CampaignDoc>, representative: Uuid) -> Campaign {
    let members: Vec<&CampaignDoc> = members.collect();
    let mut submitters: Vec<&str> = Vec::new();
    let mut anonymous = 0;
    for doc in &members {
        match doc.submitter.as_deref().map(str::trim) {
            Some(key) if !key.is_empty() => submitters.push(key),
            _ => anonymous += 1,
        }
    }
    submitters.sort_unstable();
    submitters.dedup();
    let codes = |code: fn(&CampaignDoc) -> &str| {
        let mut codes: Vec<String> =
            members.iter().map(|doc| code(doc)).filter(|c| !c.is_empty()).map(str::to_owned).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    };
    let first_seen = members.iter().map(|doc| doc.received_at).min().unwrap_or_default();
    let last_seen = members.iter().map(|doc| doc.received_at).max().unwrap_or_default();
    Campaign {
        size: members.len(),
        distinct_submitters: submitters.len() + anonymous,
        provinces: codes(|doc| &doc.province_code),
        communes: codes(|doc| &doc.commune_code),
        first_seen,
        last_seen,
        representative,
        members: members.iter().map(|doc| doc.id).collect(),
    }
}

/// Index in `members` of the member with the highest mean estimated similarity to the others
/// (the first among equals).
///
/// Exact, in `O(k · s log s)` for `s` members: the sum of a member's estimated similarities to
/// the others is, over signature positions, the number of other members holding the same value
/// at that position, divided by `k`.
fn most_central<'a>(members: &[usize], signature: &impl Fn(usize) -> &'a [u32], k: usize) -> usize {
    let mut agreements = vec![0u64; members.len()];
    let mut column: Vec<u32> = Vec::with_capacity(members.len());
    let mut sorted: Vec<u32> = Vec::with_capacity(members.len());
    for position in 0..k {
        column.clear();
        column.extend(members.iter().map(|&m| signature(m)[position]));
        sorted.clear();
        sorted.extend_from_slice(&column);
        sorted.sort_unstable();
        for (agreement, value) in agreements.iter_mut().zip(&column) {
            let below = sorted.partition_point(|v| v < value);
            let through = sorted.partition_point(|v| v <= value);
            *agreement += (through - below - 1) as u64;
        }
    }
    let mut best = 0;
    for (i, &agreement) in agreements.iter().enumerate() {
        if agreement > agreements[best] {
            best = i;
        }
    }
    best
}

/// Number of positions where two signatures agree.
fn agreement(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

/// The splitmix64 finaliser: a bijection on `u64` that spreads every input bit over the output.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of one syllable, seeded and mixed.
fn syllable_hash(syllable: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ SEED;
    for byte in syllable.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(hash)
}

/// The distinct shingle hashes of `text` (sorted), in `out`.
fn shingle_hashes(text: &str, out: &mut Vec<u64>) {
    out.clear();
    let mut syllables: Vec<u64> = Vec::with_capacity(text.len() / 4);
    for_each_folded_syllable(text, &mut String::new(), |syllable| syllables.push(syllable_hash(syllable)));
    if syllables.is_empty() {
        return;
    }
    let width = SHINGLE_SYLLABLES.min(syllables.len());
    for window in syllables.windows(width) {
        let mut hash = SEED ^ width as u64;
        for &syllable in window {
            hash = mix64(hash.wrapping_add(syllable));
        }
        out.push(hash);
    }
    out.sort_unstable();
    out.dedup();
}

/// Hash of one band of a signature, distinct per band index.
fn band_key(band: usize, rows: &[u32]) -> u64 {
    let mut hash = mix64(SEED ^ band as u64);
    for &value in rows {
        hash = mix64(hash ^ u64::from(value));
    }
    hash
}

/// MinHash signatures by one permutation hashing with densification (Shrivastava & Li, 2014):
/// one hash per shingle picks one of `num_hashes` bins and competes for that bin's minimum, and
/// an empty bin takes the value of the next non-empty bin to its right (circularly), offset by
/// the distance so that two texts agree on it only when they agree on that bin. Two signatures
/// agree on a bin with probability close to the Jaccard index of the two shingle sets, as with
/// `num_hashes` independent hash functions, at the cost of one hash per shingle instead of
/// `num_hashes` (the summary signs tens of thousands of petitions).
struct MinHasher {
    num_hashes: usize,
}

impl MinHasher {
    fn new(num_hashes: usize) -> MinHasher {
        MinHasher { num_hashes }
    }

    /// Writes the signature of a non-empty shingle set into `signature` (filled with `u32::MAX`).
    fn sign(&self, shingles: &[u64], signature: &mut [u32]) {
        let k = self.num_hashes as u64;
        for &shingle in shingles {
            let hash = mix64(shingle ^ SEED);
            // The high half picks the bin (a multiply-shift range reduction), the low half competes.
            let bin = (((hash >> 32) * k) >> 32) as usize;
            let value = hash as u32;
            if value < signature[bin] {
                signature[bin] = value;
            }
        }
        densify(signature);
    }
}

/// Fills each empty bin (`u32::MAX`) from the next non-empty bin to its right, circularly, mixed
/// with the distance; leaves the signature unchanged when every bin is empty.
fn densify(signature: &mut [u32]) {
    let k = signature.len();
    let Some(filled) = signature.iter().position(|&v| v != u32::MAX) else {
        return;
    };
    // Walk leftwards from a filled bin, so each empty bin sees its right neighbour's source.
    let mut source = signature[filled];
    let mut distance = 0u64;
    for step in 1..=k {
        let bin = (filled + k - step) % k;
        if signature[bin] == u32::MAX {
            distance += 1;
            signature[bin] = mix64(u64::from(source) ^ (distance << 32) ^ SEED) as u32;
        } else {
            source = signature[bin];
            distance = 0;
        }
    }
}

/// Disjoint sets over `0..n` with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind { parent: (0..n as u32).collect(), size: vec![1; n] }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] as usize != x {
            let grandparent = self.parent[self.parent[x] as usize];
            self.parent[x] = grandparent;
            x = grandparent as usize;
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] || (self.size[a] == self.size[b] && b < a) {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a as u32;
        self.size[a] += self.size[b];
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    /// A small seeded generator for test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(self.0)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
            options[self.below(options.len())]
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    /// Real Vietnamese news articles (VNTC sample), one per line.
    fn vntc() -> Vec<String> {
        let path = voxpop_schema::source_file("connectors/data/vntc_train_sample.jsonl");
        let source = std::fs::read_to_string(path).expect("VNTC sample is in the repository");
        source
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
                row["text"].as_str().expect("a text field").to_owned()
            })
            .collect()
    }

    fn at(hours: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 9, 1, 7, 0, 0).single().expect("valid date") + Duration::hours(hours)
    }

    fn doc(n: u128, text: String, submitter: Option<String>, commune: &str, hours: i64) -> CampaignDoc {
        CampaignDoc {
            id: Uuid::from_u128(n),
            text,
            submitter,
            province_code: commune[..2].to_owned(),
            commune_code: commune.to_owned(),
            received_at: at(hours),
        }
    }

    const NAMES: [&str; 12] = [
        "Nguyễn Văn An",
        "Trần Thị Bình",
        "Lê Văn Cường",
        "Phạm Thị Dung",
        "Hoàng Văn Em",
        "Vũ Thị Giang",
        "Đặng Văn Hải",
        "Bùi Thị Hoa",
        "Đỗ Văn Khánh",
        "Ngô Thị Lan",
        "Dương Văn Minh",
        "Lý Thị Nga",
    ];

    /// One household's complaint about the Đồng Xanh landfill: the shared text, with the
    /// household's name and address and a few wordings that vary from one letter to the next.
    fn landfill_petition(rng: &mut Rng, household: usize) -> String {
        let name = NAMES[household % NAMES.len()];
        let number = 3 + (household * 37) % 250;
        let hamlet = rng.pick(&["Đông", "Tây", "Trung", "Thượng"]);
        let feeling = rng.pick(&["rất bức xúc", "vô cùng bức xúc", "hết sức bức xúc", "rất lo lắng"]);
        let smell = rng.pick(&["bốc mùi hôi thối nồng nặc", "bốc mùi hôi thối", "mùi hôi bốc lên nồng nặc"]);
        let victims = rng.pick(&["trẻ em và người già", "người già và trẻ nhỏ", "nhiều cháu nhỏ"]);
        let times = rng.pick(&["nhiều lần", "nhiều lần gửi đơn", "ba lần", "hai lần"]);
        let ask = rng.pick(&["Kính đề nghị", "Kính mong", "Chúng tôi tha thiết đề nghị"]);
        format!(
            "Kiến nghị về bãi rác Đồng Xanh gây ô nhiễm. Tôi là {name}, trú tại số nhà {number} thôn {hamlet}, \
             xã Tân Lập. Gia đình tôi và bà con trong thôn {feeling} vì bãi rác Đồng Xanh nằm cách khu dân cư chưa \
             đầy năm trăm mét. Từ nhiều tháng nay rác thải sinh hoạt không được xử lý, {smell}, nhất là vào buổi \
             tối và những ngày nắng nóng. Nước rỉ rác chảy tràn ra mương thoát nước, ngấm xuống giếng khoan, làm \
             nước sinh hoạt của nhiều hộ bị đục và có mùi lạ. Ruồi muỗi phát triển nhiều, {victims} thường xuyên bị \
             ho, sốt, viêm đường hô hấp. Xe chở rác ra vào suốt đêm gây ồn ào và làm rơi vãi rác dọc đường liên \
             thôn. Chúng tôi đã {times} phản ánh với Ủy ban nhân dân xã nhưng đến nay vẫn chưa có biện pháp khắc \
             phục. {ask} các cơ quan có thẩm quyền kiểm tra, đình chỉ việc đổ rác, sớm di dời bãi rác ra xa khu dân \
             cư và hỗ trợ người dân khoan giếng mới."
        )
    }

    /// Fifty landfill petitions from commune 01234 (ids 1..=50, one every five hours; 40
    /// distinct phones, 5 second letters from the same phones, 5 anonymous: 45 citizens) and
    /// 200 news articles of every VNTC topic from communes elsewhere (ids 1001..).
    fn landfill_and_news() -> Vec<CampaignDoc> {
        let mut rng = Rng(7);
        let mut docs = Vec::new();
        for household in 0..50usize {
            let submitter = match household % 10 {
                9 => None,
                4 => Some(format!("09{:08}", household - 1)),
                _ => Some(format!("09{household:08}")),
            };
            let text = landfill_petition(&mut rng, household);
            docs.push(doc(1 + household as u128, text, submitter, "01234", 5 * household as i64));
        }
        let communes = ["79001", "79002", "48010", "31120", "01010", "92003"];
        for (i, text) in vntc().into_iter().step_by(5).take(200).enumerate() {
            let commune = communes[i % communes.len()];
            docs.push(doc(1001 + i as u128, text, Some(format!("news{i}")), commune, i as i64));
        }
        docs
    }

    #[test]
    fn fifty_households_one_landfill_make_one_campaign() {
        let docs = landfill_and_news();
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns.len(), 1, "{campaigns:#?}");
        let campaign = &campaigns[0];
        assert_eq!(campaign.size, 50);
        assert_eq!(campaign.members, (1..=50).map(Uuid::from_u128).collect::<Vec<_>>());
        assert_eq!(campaign.distinct_submitters, 45);
        assert_eq!(campaign.provinces, ["01"]);
        assert_eq!(campaign.communes, ["01234"]);
        assert_eq!(campaign.first_seen, at(0));
        assert_eq!(campaign.last_seen, at(5 * 49));
        assert!(campaign.members.contains(&campaign.representative));
    }

    #[test]
    fn news_articles_make_no_campaign() {
        let docs: Vec<CampaignDoc> =
            vntc().into_iter().enumerate().map(|(i, text)| doc(i as u128, text, None, "79001", i as i64)).collect();
        assert_eq!(docs.len(), 1000);
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert!(campaigns.is_empty(), "{campaigns:#?}");
    }

    #[test]
    fn same_petitions_in_any_order_give_the_same_campaigns() {
        let docs = landfill_and_news();
        let options = CampaignOptions::default();
        let first = find_campaigns(&docs, &options).unwrap();
        assert_eq!(find_campaigns(&docs, &options).unwrap(), first);
        let mut rng = Rng(99);
        for _ in 0..3 {
            let mut shuffled = docs.clone();
            rng.shuffle(&mut shuffled);
            assert_eq!(find_campaigns(&shuffled, &options).unwrap(), first);
        }
    }

    #[test]
    fn invalid_options_are_errors() {
        let base = CampaignOptions::default();
        let invalid = [
            (CampaignOptions { bands: 5, ..base }, CampaignError::Bands { bands: 5, num_hashes: 128 }),
            (CampaignOptions { bands: 0, ..base }, CampaignError::Bands { bands: 0, num_hashes: 128 }),
            (CampaignOptions { bands: 256, ..base }, CampaignError::Bands { bands: 256, num_hashes: 128 }),
            (CampaignOptions { num_hashes: 0, ..base }, CampaignError::NumHashes(0)),
            (CampaignOptions { num_hashes: MAX_HASHES + 32, ..base }, CampaignError::NumHashes(MAX_HASHES + 32)),
            (CampaignOptions { threshold: 0.0, ..base }, CampaignError::Threshold(0.0)),
            (CampaignOptions { threshold: 1.5, ..base }, CampaignError::Threshold(1.5)),
            (CampaignOptions { threshold: -0.2, ..base }, CampaignError::Threshold(-0.2)),
            (CampaignOptions { min_size: 1, ..base }, CampaignError::MinSize(1)),
            (CampaignOptions { min_size: 0, ..base }, CampaignError::MinSize(0)),
        ];
        let docs = landfill_and_news();
        for (options, expected) in invalid {
            assert_eq!(options.validate(), Err(expected.clone()));
            assert_eq!(find_campaigns(&docs, &options), Err(expected));
        }
        let nan = CampaignOptions { threshold: f64::NAN, ..base };
        assert!(matches!(find_campaigns(&docs, &nan), Err(CampaignError::Threshold(_))));
        assert_eq!(base.validate(), Ok(()));
        // Other valid shapes work: 16 bands of 8 rows, 64 bands of 1 row over 64 hashes.
        for options in [
            CampaignOptions { bands: 16, ..base },
            CampaignOptions { num_hashes: 64, bands: 64, threshold: 0.5, ..base },
        ] {
            let campaigns = find_campaigns(&docs, &options).unwrap();
            assert_eq!(campaigns.len(), 1);
            assert_eq!(campaigns[0].size, 50);
        }
    }

    #[test]
    fn empty_input_gives_no_campaign() {
        assert_eq!(find_campaigns(&[], &CampaignOptions::default()), Ok(Vec::new()));
    }

    #[test]
    fn texts_without_words_join_nothing_and_short_texts_still_compare() {
        let mut docs: Vec<CampaignDoc> = ["", " ", "!!!", "...", "", "?"]
            .iter()
            .enumerate()
            .map(|(i, t)| doc(i as u128, t.to_string(), None, "79001", 0))
            .collect();
        assert_eq!(find_campaigns(&docs, &CampaignOptions::default()), Ok(Vec::new()));
        // Under three syllables the whole text is one shingle: equal short texts are duplicates.
        for (i, text) in ["Rác thải!", "rac thai", "RÁC THẢI", "Nước bẩn"].iter().enumerate() {
            docs.push(doc(100 + i as u128, text.to_string(), Some("same".into()), "79001", i as i64));
        }
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].members, [Uuid::from_u128(100), Uuid::from_u128(101), Uuid::from_u128(102)]);
        assert_eq!(campaigns[0].distinct_submitters, 1);
    }

    #[test]
    fn campaigns_come_largest_first_and_respect_min_size() {
        let mut rng = Rng(3);
        let mut docs = Vec::new();
        for household in 0..12usize {
            docs.push(doc(household as u128, landfill_petition(&mut rng, household), None, "01234", 100));
        }
        let road = |street: &str, day: usize| {
            format!(
                "Đường liên xã đoạn qua {street} bị hư hỏng nặng sau mùa mưa, mặt đường có nhiều ổ gà sâu, nước \
                 đọng thành vũng, xe máy đi qua thường xuyên bị ngã, học sinh đi học rất nguy hiểm. Người dân đã tự \
                 đổ đá hộc lấp tạm nhưng chỉ được vài ngày lại hỏng. Đề nghị huyện sớm bố trí kinh phí sửa chữa, \
                 nâng cấp tuyến đường, lắp thêm đèn chiếu sáng và biển báo trước mùa mưa năm sau (đơn ngày {day})."
            )
        };
        let streets = ["thôn Một", "thôn Hai", "xóm Bãi", "xóm Đình"];
        for i in 0..8usize {
            let commune = if i % 2 == 0 { "48010" } else { "48011" };
            docs.push(doc(200 + i as u128, road(streets[i % 4], i), Some(format!("road{}", i % 3)), commune, 50));
        }
        // Two copies of a third petition: below the default min_size.
        for i in 0..2 {
            docs.push(doc(
                300 + i,
                "Đề nghị cấp lại sổ hộ nghèo cho gia đình bà Lò Thị Mai ở bản Nà Lừa".into(),
                None,
                "11001",
                0,
            ));
        }
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns.iter().map(|c| c.size).collect::<Vec<_>>(), [12, 8]);
        assert_eq!(campaigns[1].provinces, ["48"]);
        assert_eq!(campaigns[1].communes, ["48010", "48011"]);
        assert_eq!(campaigns[1].distinct_submitters, 3);
        let pairs = find_campaigns(&docs, &CampaignOptions { min_size: 2, ..CampaignOptions::default() }).unwrap();
        assert_eq!(pairs.iter().map(|c| c.size).collect::<Vec<_>>(), [12, 8, 2]);
        let large = find_campaigns(&docs, &CampaignOptions { min_size: 10, ..CampaignOptions::default() }).unwrap();
        assert_eq!(large.iter().map(|c| c.size).collect::<Vec<_>>(), [12]);
    }

    #[test]
    fn representative_is_the_text_the_others_were_copied_from() {
        let mut rng = Rng(11);
        let original = landfill_petition(&mut rng, 0);
        // Each copy changes one different passage: copies are closer to the original than to
        // each other.
        let edits = [
            ("bốc mùi", "toả mùi"),
            ("giếng khoan", "giếng đào"),
            ("Ruồi muỗi", "Ruồi nhặng"),
            ("suốt đêm", "cả ngày lẫn đêm"),
            ("năm trăm mét", "ba trăm mét"),
            ("viêm đường hô hấp", "đau mắt đỏ"),
            ("mương thoát nước", "kênh nội đồng"),
        ];
        let mut docs = Vec::new();
        for (i, (from, to)) in edits.iter().enumerate() {
            assert!(original.contains(from), "{from}");
            docs.push(doc(10 + i as u128, original.replacen(from, to, 1), None, "01234", i as i64));
        }
        // The original arrives in the middle, so "earliest" alone would not pick it.
        docs.push(doc(99, original, None, "01234", 3));
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].size, 8);
        assert_eq!(campaigns[0].representative, Uuid::from_u128(99));
        // Identical members: the earliest is the representative.
        let twins: Vec<CampaignDoc> =
            (0..4).map(|i| doc(50 - i as u128, "Xin cấp nước sạch cho thôn Đông".into(), None, "01234", i)).collect();
        let campaigns = find_campaigns(&twins, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns[0].representative, Uuid::from_u128(50));
    }

    #[test]
    fn signature_agreement_estimates_jaccard() {
        // Pairs of texts of made-up syllables with a known overlap: `shared` common syllables out
        // of 300. Every trial draws a new pair: with one fixed text, the errors of all trials
        // would share that text's bins and not average out.
        let word = |i: usize| format!("w{i}");
        let hasher = MinHasher::new(128);
        let mut rng = Rng(5);
        let mut errors = Vec::new();
        for trial in 0..200 {
            let shared = 20 + rng.below(260);
            let base = 1_000_000 * (trial + 1);
            let a: Vec<String> = (0..300).map(|i| word(base + i)).collect();
            let mut b: Vec<String> = (0..shared).map(|i| word(base + i)).collect();
            b.extend((0..300 - shared).map(|i| word(base + 500_000 + i)));
            let (mut sa, mut sb) = (Vec::new(), Vec::new());
            shingle_hashes(&a.join(" "), &mut sa);
            shingle_hashes(&b.join(" "), &mut sb);
            let common = sa.iter().filter(|h| sb.binary_search(h).is_ok()).count();
            let jaccard = common as f64 / (sa.len() + sb.len() - common) as f64;
            let (mut ga, mut gb) = (vec![u32::MAX; 128], vec![u32::MAX; 128]);
            hasher.sign(&sa, &mut ga);
            hasher.sign(&sb, &mut gb);
            let estimate = agreement(&ga, &gb) as f64 / 128.0;
            errors.push(estimate - jaccard);
        }
        let bias = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().fold(0.0f64, |w, e| w.max(e.abs()));
        // Standard error is at most 0.044 at 128 hashes: bias must vanish, no error beyond 4 SE.
        assert!(bias.abs() < 0.01, "bias {bias}");
        assert!(worst < 0.18, "worst {worst}");
    }

    #[test]
    fn blank_submitters_count_as_anonymous_citizens() {
        let text = || "Đề nghị sửa chữa cầu treo bản Pá Khoang bị gãy ván, người dân qua lại rất nguy hiểm".to_owned();
        let submitters = [Some("a"), Some(" a "), Some(""), None, Some("b"), Some("   ")];
        let docs: Vec<CampaignDoc> = submitters
            .iter()
            .enumerate()
            .map(|(i, s)| doc(i as u128, text(), s.map(str::to_owned), "11001", i as i64))
            .collect();
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        // "a" (twice), "b", and three anonymous petitions.
        assert_eq!(campaigns[0].distinct_submitters, 5);
    }

    #[test]
    fn giant_buckets_stay_bounded_and_still_form_one_campaign() {
        // 3,000 copies of a form letter differing only in the name at the end: one bucket far
        // above MAX_BUCKET_PEERS in every band.
        let docs: Vec<CampaignDoc> = (0..3000u128)
            .map(|i| {
                let text = format!(
                    "Kính gửi Ủy ban nhân dân tỉnh, chúng tôi đề nghị giữ nguyên tên xã Tân Lập sau khi sắp xếp đơn \
                     vị hành chính vì tên xã gắn với lịch sử và đời sống của bà con. Người ký tên công dân số {i}"
                );
                doc(i, text, Some(format!("c{i}")), "01234", (i % 100) as i64)
            })
            .collect();
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        assert_eq!(campaigns.len(), 1);
        assert_eq!(campaigns[0].size, 3000);
        assert_eq!(campaigns[0].distinct_submitters, 3000);
    }

    /// Prints how long 100,000 petitions of about 1 KB take (`cargo nextest run --release
    /// --run-ignored only -E 'test(campaign_timing)' --no-capture`).
    #[test]
    #[ignore = "timing, run by hand in release"]
    fn campaign_timing_100k() {
        let sentences: Vec<String> = vntc()
            .iter()
            .flat_map(|text| text.split(['.', '!', '?', '\n']).map(str::trim).map(str::to_owned).collect::<Vec<_>>())
            .filter(|s| (40..300).contains(&s.len()))
            .collect();
        let mut rng = Rng(2025);
        let mut docs = Vec::with_capacity(100_000);
        let random_text = |rng: &mut Rng| {
            let mut text = String::new();
            while text.len() < 1000 {
                text.push_str(&sentences[rng.below(sentences.len())]);
                text.push_str(". ");
            }
            text
        };
        // 95,000 petitions of random sentences; 250 campaigns of 20 signed copies of one text.
        for i in 0..95_000u128 {
            let text = random_text(&mut rng);
            docs.push(doc(i, text, None, "79001", (i % 5000) as i64));
        }
        for campaign in 0..250u128 {
            let shared = random_text(&mut rng);
            for member in 0..20 {
                let (name, number) = (NAMES[rng.below(NAMES.len())], rng.below(300));
                let text = format!("Tôi là {name}, số nhà {number}. {shared}");
                docs.push(doc(1_000_000 + campaign * 100 + member, text, None, "01234", member as i64));
            }
        }
        let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
        let start = std::time::Instant::now();
        let campaigns = find_campaigns(&docs, &CampaignOptions::default()).unwrap();
        let elapsed = start.elapsed();
        println!(
            "{} docs, {:.1} MB: {} campaigns (largest {}) in {:.2?}",
            docs.len(),
            bytes as f64 / 1e6,
            campaigns.len(),
            campaigns.first().map_or(0, |c| c.size),
            elapsed
        );
        assert_eq!(campaigns.len(), 250);
        assert!(campaigns.iter().all(|c| c.size == 20 && c.members.iter().all(|m| m.as_u128() >= 1_000_000)));
    }
}
