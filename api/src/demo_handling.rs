//! Synthetic handling for the demo: `voxpop serve --demo` gives a sample of the demo petitions a
//! plausible past (accepted within a few working days, some declined, assigned, started, answered
//! on time or late, rated, reopened, transferred, escalated, extended), so the inbox, the
//! performance figures and the citizens' timelines have something to show.
//!
//! In: the demo petitions in the lake (channel `demo`), the handling rules of the [`Desk`].
//! Out: handling events on `voxpop.events`, each decided by [`Desk::act_at`] with the same rules
//! as an officer's action, dated in the past (never in the future, never before the petition's
//! receipt); the pipeline folds them into the lake like any other.
//! Guarantees: every note and answer says it is synthetic ([`SYNTHETIC`]); the choices come from
//! a seeded RNG, so the same demo petitions get the same histories; it runs once per data
//! directory (the [`MARKER`] file), and a run cut short resumes with the petitions still
//! without events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tracing::{info, warn};
use uuid::Uuid;
use voxpop_queries::PetitionQueries;
use voxpop_schema::Units;
use voxpop_schema::calendar::{vietnam_date, vietnam_offset};
use voxpop_schema::workflow::{self, ActionRequest, Actor, Handling, PetitionRef, State, Status};

use crate::handling::Desk;

/// File in the data directory that says the demo handling was seeded (it holds the counts).
pub const MARKER: &str = "demo-handling-seeded";
/// File the demo petitions' seeding writes when intake has taken them all (it holds the count).
pub const DEMO_PETITIONS_MARKER: &str = "demo-seeded";
/// Demo petitions sampled at most: enough for every figure, however large the demo. Smaller
/// demos have half their petitions sampled (see [`sample_size`]).
pub const SAMPLE: usize = 3_000;
/// The RNG's seed (the demo petitions' generator uses the same).
pub const SEED: u64 = 2025;
/// The prefix of every synthetic note and answer.
pub const SYNTHETIC: &str = "[Dữ liệu mô phỏng] ";

const DECLINE_REASONS: &[&str] = &[
    "Nội dung không thuộc phạm vi tiếp nhận của Mặt trận; đã hướng dẫn công dân gửi đến cơ quan có thẩm quyền.",
    "Đơn trùng nội dung với kiến nghị đã được trả lời trước đó.",
    "Đơn không ghi rõ nội dung kiến nghị; đã đề nghị công dân bổ sung thông tin.",
];
const TRANSFER_REASONS: &[&str] = &["Sự việc xảy ra trên địa bàn xã, phường khác; chuyển đơn vị quản lý địa bàn."];
const ESCALATE_REASONS: &[&str] = &[
    "Vụ việc vượt thẩm quyền giải quyết của cấp dưới, chuyển lên cấp trên.",
    "Nội dung liên quan đến nhiều địa bàn, đề nghị cấp trên chủ trì giải quyết.",
];
const EXTEND_REASONS: &[&str] =
    &["Vụ việc phức tạp, cần thêm thời gian xác minh thực tế.", "Chờ ý kiến của các cơ quan chuyên môn liên quan."];
const ASSIGN_NOTES: &[&str] =
    &["Giao Ban công tác Mặt trận xác minh, báo cáo.", "Giao cán bộ phụ trách địa bàn kiểm tra thực tế."];
const ANSWERS: &[&str] = &[
    "Mặt trận đã phối hợp với chính quyền địa phương kiểm tra thực tế; cơ quan chức năng đã có phương án xử lý và thông báo kết quả đến công dân.",
    "Kiến nghị đã được chuyển đến cơ quan có thẩm quyền; cơ quan đã trả lời bằng văn bản, nội dung trả lời được gửi kèm.",
    "Ủy ban nhân dân đã tiếp thu và đưa nội dung kiến nghị vào kế hoạch giải quyết trong quý tới.",
    "Qua xác minh, nội dung phản ánh là đúng; đơn vị liên quan đã khắc phục và cam kết không để tái diễn.",
];
const REOPEN_REASONS: &[&str] =
    &["Vấn đề vẫn chưa được khắc phục trên thực tế.", "Nội dung trả lời chưa đúng với kiến nghị của tôi."];

/// A demo petition from the lake.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPetition {
    pub id: Uuid,
    pub petition: PetitionRef,
}

/// One action of a synthetic history.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub request: ActionRequest,
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

/// What a seeding did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Seeded {
    /// Demo petitions sampled.
    pub petitions: usize,
    /// Of those, petitions given at least one event.
    pub handled: usize,
    pub events: usize,
    pub declined: usize,
    pub answered: usize,
    pub answered_late: usize,
    pub rated: usize,
    pub reopened: usize,
    pub redirected: usize,
    pub extended: usize,
    /// Actions the desk refused or could not record (the petition's history stops there).
    pub failed: usize,
}

/// The demo's staff: an administrator of the central level, whose authority covers every unit.
pub fn demo_staff() -> Actor {
    Actor { id: "demo".to_owned(), role: "admin".to_owned(), unit: workflow::CENTRAL.to_owned() }
}

/// The citizen who rates and reopens (as `POST /api/v1/track/{code}/actions` names them).
pub fn demo_citizen() -> Actor {
    Actor { id: "citizen".to_owned(), role: "citizen".to_owned(), unit: String::new() }
}

fn synthetic(text: &str) -> Option<String> {
    Some(format!("{SYNTHETIC}{text}"))
}

fn request(action: &str) -> ActionRequest {
    ActionRequest { action: action.to_owned(), ..ActionRequest::default() }
}

/// Builds one petition's history against a local copy of its status, with the rules the desk
/// applies, so that every step it returns is one the desk accepts.
struct Planner<'a> {
    handling: &'a Handling,
    rng: &'a mut StdRng,
    now: DateTime<Utc>,
    status: Status,
    steps: Vec<Step>,
}

impl Planner<'_> {
    /// Takes `request` at `at` if that is not in the future and the rules allow it.
    fn take(&mut self, request: ActionRequest, actor: Actor, at: DateTime<Utc>) -> bool {
        if at > self.now || at < self.status.updated_at {
            return false;
        }
        let rules = self.handling.rules();
        let next = self.status.decide(&request, &actor, at, &rules).and_then(|event| self.status.apply(&event, &rules));
        match next {
            Ok(next) => {
                self.status = next;
                self.steps.push(Step { request, actor, at });
                true
            }
            Err(_) => false,
        }
    }

    fn staff(&mut self, request: ActionRequest, at: DateTime<Utc>) -> bool {
        self.take(request, demo_staff(), at)
    }

    /// An instant in office hours (07:30-17:00 in Vietnam) `working_days` working days after
    /// `after`, and after it.
    fn working(&mut self, after: DateTime<Utc>, working_days: u32) -> DateTime<Utc> {
        let calendar = &self.handling.calendar;
        let day = calendar.checked_add_working_days(vietnam_date(after), working_days).unwrap_or(vietnam_date(after));
        let minutes = self.rng.random_range(7 * 60 + 30..17 * 60);
        let local = day.and_hms_opt(0, 0, 0).map(|midnight| midnight + chrono::Duration::minutes(minutes));
        let at = local
            .and_then(|local| vietnam_offset().from_local_datetime(&local).single())
            .map(|at| at.with_timezone(&Utc))
            .unwrap_or(after);
        if at <= after { after + chrono::Duration::minutes(self.rng.random_range(15..180)) } else { at }
    }

    /// [`Planner::working`] after a random number of working days in `low..=high`.
    fn later(&mut self, after: DateTime<Utc>, low: u32, high: u32) -> DateTime<Utc> {
        let days = self.rng.random_range(low..=high);
        self.working(after, days)
    }

    /// An instant some hours or days after `after`, at any time of day (citizens).
    fn citizen_time(&mut self, after: DateTime<Utc>, max_days: i64) -> DateTime<Utc> {
        after + chrono::Duration::minutes(self.rng.random_range(60..max_days * 24 * 60))
    }

    fn pick(&mut self, texts: &[&str]) -> Option<String> {
        synthetic(texts.choose(self.rng).copied().unwrap_or_default())
    }

    /// The unit to assign to: a village of a commune, the petition's commune under a province,
    /// the petition's province under the central level.
    fn unit_below(&mut self) -> String {
        let unit = self.status.unit.clone();
        match unit.len() {
            5 => format!("{unit}-{:03}", self.rng.random_range(1..=12)),
            2 if unit != workflow::CENTRAL => self.status.commune_code.clone(),
            _ => self.status.province_code.clone(),
        }
    }

    /// Another commune of the same province to transfer to, if the handling unit is a commune.
    fn neighbour(&mut self) -> Option<String> {
        if self.status.unit.len() != 5 {
            return None;
        }
        let candidates: Vec<&str> = Units::embedded()
            .communes()
            .iter()
            .filter(|c| c.province_code == self.status.province_code && c.code != self.status.unit)
            .map(|c| c.code.as_str())
            .collect();
        candidates.choose(self.rng).map(|code| (*code).to_owned())
    }

    /// A citizen's rating, mostly good, worse after a late answer.
    fn rating(&mut self, late: bool) -> u8 {
        let roll = self.rng.random_range(0..100);
        let rating = match roll {
            0..5 => 1,
            5..12 => 2,
            12..26 => 3,
            26..60 => 4,
            _ => 5,
        };
        if late && self.rng.random_bool(0.4) { (rating - 1).max(1) } else { rating }
    }

    /// Starts (if needed), possibly extends, and answers; on time or late as `late` says, or
    /// never when the answer would fall after now. Whether it answered.
    fn work_and_answer(&mut self, mut at: DateTime<Utc>, late: bool) -> bool {
        if self.status.state != State::InProgress {
            at = self.later(at, 0, 3);
            if !self.staff(request("start"), at) {
                return false;
            }
        }
        if self.rng.random_bool(0.07) {
            let when = self.later(at, 3, 15);
            let days = self.rng.random_range(5..=10);
            let extend = ActionRequest { days: Some(days), note: self.pick(EXTEND_REASONS), ..request("extend") };
            if !self.staff(extend, when) {
                return false;
            }
            at = when;
        }
        let Some(due) = self.status.due_at else { return false };
        let available = self.handling.calendar.working_days_between(vietnam_date(at), vietnam_date(due)).max(0) as u32;
        let when = if late || available == 0 {
            self.later(due, 1, 12)
        } else {
            // Most answers come well before the limit, some in its last days.
            let upper = if self.rng.random_bool(0.7) { (available * 2 / 3).max(1) } else { available };
            self.later(at, 1, upper)
        };
        let answer = ActionRequest { answer: self.pick(ANSWERS), ..request("answer") };
        self.staff(answer, when)
    }

    fn run(&mut self) {
        let received = self.status.received_at;
        // A share nobody has looked at yet: received, overdue once the acceptance limit passes.
        if self.rng.random_bool(0.15) {
            return;
        }
        let first =
            if self.rng.random_bool(0.85) { self.rng.random_range(0..=3) } else { self.rng.random_range(4..=12) };
        let mut at = self.working(received, first);
        // A few go to another unit first: a neighbouring commune, or the level above.
        let redirect = self.rng.random_range(0..100);
        if redirect < 4 {
            let target = if redirect < 2 { self.neighbour() } else { None };
            let moved = match target {
                Some(unit) => {
                    let note = self.pick(TRANSFER_REASONS);
                    self.staff(ActionRequest { unit: Some(unit), note, ..request("transfer") }, at)
                }
                None => {
                    let note = self.pick(ESCALATE_REASONS);
                    self.staff(ActionRequest { note, ..request("escalate") }, at)
                }
            };
            if !moved {
                return;
            }
            at = self.later(at, 1, 4);
        }
        if self.rng.random_bool(0.08) {
            let note = self.pick(DECLINE_REASONS);
            self.staff(ActionRequest { note, ..request("decline") }, at);
            return;
        }
        if !self.staff(request("accept"), at) {
            return;
        }
        // Some stay accepted and untouched: overdue once the answer's limit passes.
        if self.rng.random_bool(0.06) {
            return;
        }
        if self.rng.random_bool(0.75) {
            at = self.later(at, 0, 3);
            let unit = self.unit_below();
            let note = self.pick(ASSIGN_NOTES);
            if !self.staff(ActionRequest { unit: Some(unit), note, ..request("assign") }, at) {
                return;
            }
        }
        // Some stall in progress (overdue later); the rest are answered, a quarter of them late.
        let stalled = self.rng.random_bool(0.06);
        let late = self.rng.random_bool(0.25);
        if stalled {
            at = self.later(at, 0, 3);
            self.staff(request("start"), at);
            return;
        }
        if !self.work_and_answer(at, late) {
            return;
        }
        self.after_answer(late, true);
    }

    /// The citizen rates, reopens; the unit closes, or answers again after a reopening.
    fn after_answer(&mut self, late: bool, may_reopen: bool) {
        let answered_at = self.status.updated_at;
        let mut last = answered_at;
        let mut rating = None;
        if self.rng.random_bool(0.6) {
            let value = self.rating(late);
            let at = self.citizen_time(answered_at, 7);
            if self.take(ActionRequest { rating: Some(value), ..request("rate") }, demo_citizen(), at) {
                rating = Some(value);
                last = at;
            }
        }
        let reopen = match rating {
            Some(value) if value <= 2 => 0.4,
            Some(_) => 0.02,
            None => 0.04,
        };
        if may_reopen && self.rng.random_bool(reopen) {
            let at = self.citizen_time(last, 14);
            let note = self.pick(REOPEN_REASONS);
            if !self.take(ActionRequest { note, ..request("reopen") }, demo_citizen(), at) {
                return;
            }
            if self.rng.random_bool(0.7) {
                let late = self.rng.random_bool(0.15);
                if self.work_and_answer(at, late) {
                    self.after_answer(late, false);
                }
            }
            return;
        }
        if self.status.state == State::Answered && self.rng.random_bool(0.5) {
            let at = self.later(last, 5, 15);
            self.staff(request("close"), at);
        }
    }
}

/// A plausible history for a petition nobody has acted on (`status` is its initial status):
/// the steps in order, all between its receipt and `now`, each allowed by the rules in turn.
/// Empty for the share left untouched.
pub fn plan(status: &Status, handling: &Handling, rng: &mut StdRng, now: DateTime<Utc>) -> Vec<Step> {
    if status.state != State::Received || status.events > 0 {
        return Vec::new();
    }
    let mut planner = Planner { handling, rng, now, status: status.clone(), steps: Vec::new() };
    planner.run();
    planner.steps
}

/// How many of `demo` petitions get sampled: half of them (of which about one in seven is then
/// left untouched, see [`plan`]), at most [`SAMPLE`]; the rest stay as received.
pub fn sample_size(demo: usize) -> usize {
    demo.div_ceil(2).min(SAMPLE)
}

/// The RNG of the `n`-th sampled petition: each petition's history depends on its place in the
/// sample only, not on the others' (a resumed seeding gives the same histories).
pub fn rng_for(n: usize) -> StdRng {
    StdRng::seed_from_u64(SEED.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(n as u64))
}

/// Up to `limit` demo petitions from the lake, the same ones for the same demo (the first by
/// external id, which the generator numbers independently of receipt time, place and theme).
pub async fn sample(queries: &PetitionQueries, limit: usize) -> anyhow::Result<Vec<DemoPetition>> {
    let Some(ctx) = queries.session().await? else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT id, tracking_code, title, CAST(CAST(received_at AS BIGINT) AS VARCHAR) AS received_micros, \
         province_code, commune_code, topic FROM petitions WHERE channel = 'demo' \
         ORDER BY external_id LIMIT {limit}"
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut found = Vec::new();
    for batch in &batches {
        let text = |name: &str| voxpop_queries::string_column(batch, name);
        let (ids, codes, titles, received, provinces, communes, topics) = (
            text("id")?,
            text("tracking_code")?,
            text("title")?,
            text("received_micros")?,
            text("province_code")?,
            text("commune_code")?,
            text("topic")?,
        );
        for i in 0..batch.num_rows() {
            let Some(Ok(id)) = ids[i].as_deref().map(Uuid::parse_str) else { continue };
            let Some(received_at) = received[i]
                .as_deref()
                .and_then(|micros| micros.parse::<i64>().ok())
                .and_then(DateTime::<Utc>::from_timestamp_micros)
            else {
                continue;
            };
            found.push(DemoPetition {
                id,
                petition: PetitionRef {
                    tracking_code: codes[i].clone().unwrap_or_default(),
                    received_at,
                    province_code: provinces[i].clone().unwrap_or_default(),
                    commune_code: communes[i].clone().unwrap_or_default(),
                    topic: topics[i].clone(),
                    title: titles[i].clone().unwrap_or_default(),
                },
            });
        }
    }
    Ok(found)
}

/// Demo petitions in the lake.
pub async fn count_demo(queries: &PetitionQueries) -> anyhow::Result<usize> {
    let Some(ctx) = queries.session().await? else {
        return Ok(0);
    };
    let sql = "SELECT CAST(count(*) AS VARCHAR) AS n FROM petitions WHERE channel = 'demo'";
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut total = 0;
    for batch in &batches {
        for value in voxpop_queries::string_column(batch, "n")?.into_iter().flatten() {
            total += value.parse::<usize>().unwrap_or(0);
        }
    }
    Ok(total)
}

/// Gives each of `petitions` without events a history (see [`plan`]) through the desk, which
/// checks every action and appends it to the log.
pub async fn seed(desk: &Desk, petitions: &[DemoPetition], now: DateTime<Utc>) -> Seeded {
    let mut seeded = Seeded { petitions: petitions.len(), ..Seeded::default() };
    let bar = crate::commands::progress_bar(petitions.len() as u64, "seeding demo handling");
    for (n, demo) in petitions.iter().enumerate() {
        bar.inc(1);
        if n > 0 && n % 500 == 0 {
            info!(petitions = n, of = petitions.len(), events = seeded.events, "seeding demo handling");
        }
        let status = desk.status_or_initial(demo.id, &demo.petition);
        let steps = plan(&status, &desk.handling, &mut rng_for(n), now);
        if steps.is_empty() {
            continue;
        }
        seeded.handled += 1;
        let mut last = status;
        for step in &steps {
            match desk.act_at(demo.id, &demo.petition, &step.request, &step.actor, step.at).await {
                Ok((event, next)) => {
                    seeded.events += 1;
                    match event.action {
                        workflow::Action::Decline => seeded.declined += 1,
                        workflow::Action::Answer => {
                            seeded.answered += 1;
                            seeded.answered_late += usize::from(next.answered_on_time == Some(false));
                        }
                        workflow::Action::Rate => seeded.rated += 1,
                        workflow::Action::Reopen => seeded.reopened += 1,
                        workflow::Action::Transfer | workflow::Action::Escalate => seeded.redirected += 1,
                        workflow::Action::Extend => seeded.extended += 1,
                        _ => {}
                    }
                    last = next;
                }
                Err(err) => {
                    warn!(petition = %demo.id, state = last.state.as_str(), action = %step.request.action, error = ?err,
                        "a synthetic handling action was not recorded");
                    seeded.failed += 1;
                    break;
                }
            }
        }
    }
    bar.finish_and_clear();
    seeded
}

/// Waits until intake has taken the demo petitions (their marker) and the lake holds them, then
/// seeds the demo handling once per data directory (`root`). Logs what it did; errors are
/// logged, and the next start tries again.
pub async fn seed_once(desk: Arc<Desk>, queries: Arc<PetitionQueries>, root: PathBuf) {
    let marker = root.join(MARKER);
    if marker.exists() {
        info!("demo handling was seeded on an earlier start");
        return;
    }
    match seed_when_ready(&desk, &queries, &root).await {
        Ok(seeded) => {
            let _ = std::fs::write(&marker, format!("{}\n", serde_json::to_string(&seeded).unwrap_or_default()));
            info!(
                petitions = seeded.petitions,
                handled = seeded.handled,
                events = seeded.events,
                answered = seeded.answered,
                answered_late = seeded.answered_late,
                rated = seeded.rated,
                reopened = seeded.reopened,
                declined = seeded.declined,
                failed = seeded.failed,
                "demo handling seeded (synthetic, actor `demo`)"
            );
        }
        Err(err) => warn!(error = %err, "seeding demo handling failed"),
    }
}

async fn seed_when_ready(desk: &Desk, queries: &PetitionQueries, root: &std::path::Path) -> anyhow::Result<Seeded> {
    let petitions_marker = root.join(DEMO_PETITIONS_MARKER);
    let expected = loop {
        if let Ok(text) = std::fs::read_to_string(&petitions_marker) {
            break text.trim().parse::<usize>().unwrap_or(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The pipeline follows intake within seconds; a lake that stops growing short of the count
    // (petitions dead-lettered) is taken as it is after a minute.
    let (mut seen, mut since) = (0, tokio::time::Instant::now());
    let count = loop {
        let count = count_demo(queries).await?;
        if count >= expected {
            break count;
        }
        if count != seen {
            (seen, since) = (count, tokio::time::Instant::now());
        } else if count > 0 && since.elapsed() > Duration::from_secs(60) {
            warn!(count, expected, "the lake holds fewer demo petitions than intake took; seeding handling for those");
            break count;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let petitions = sample(queries, sample_size(count)).await?;
    info!(petitions = petitions.len(), "seeding demo handling");
    Ok(seed(desk, &petitions, Utc::now()).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn petition(n: usize, received_at: DateTime<Utc>) -> (Uuid, PetitionRef) {
        let communes = Units::embedded().communes();
        let commune = &communes[n * 7 % communes.len()];
        let petition = PetitionRef {
            tracking_code: format!("DEMO-{n:04}"),
            received_at,
            province_code: commune.province_code.clone(),
            commune_code: commune.code.clone(),
            topic: Some(if n.is_multiple_of(10) { "tham_nhung" } else { "moi_truong" }.to_owned()),
            title: "Bãi rác (dữ liệu tổng hợp)".to_owned(),
        };
        (Uuid::now_v7(), petition)
    }

    /// Plans for 1,500 petitions received over the last 12 weeks, and their final statuses.
    fn plans(now: DateTime<Utc>) -> (Vec<Vec<Step>>, Vec<Status>) {
        let handling = Handling::default_embedded();
        let rules = handling.rules();
        let (mut plans, mut finals) = (Vec::new(), Vec::new());
        for n in 0..1_500 {
            let received_at = now - chrono::Duration::minutes((n as i64 * 7_919) % (12 * 7 * 24 * 60));
            let (id, reference) = petition(n, received_at);
            let mut status = Status::initial(id, &reference, &rules);
            let steps = plan(&status, &handling, &mut rng_for(n), now);
            let mut previous = received_at;
            for step in &steps {
                assert!(
                    step.at >= previous && step.at <= now,
                    "{} at {} after {previous}",
                    step.request.action,
                    step.at
                );
                for text in [&step.request.note, &step.request.answer].into_iter().flatten() {
                    assert!(text.starts_with(SYNTHETIC), "{text}");
                }
                let event = status.decide(&step.request, &step.actor, step.at, &rules).unwrap();
                status = status.apply(&event, &rules).unwrap();
                previous = step.at;
            }
            plans.push(steps);
            finals.push(status);
        }
        (plans, finals)
    }

    #[test]
    fn demo_histories_follow_the_rules_stay_in_the_past_and_mix_outcomes() {
        let now: DateTime<Utc> = "2026-05-20T05:00:00Z".parse().unwrap();
        let (steps, finals) = plans(now);
        let untouched = steps.iter().filter(|s| s.is_empty()).count();
        let count = |f: &dyn Fn(&Status) -> bool| finals.iter().filter(|s| f(s)).count();
        let answered = count(&|s| s.answered_at.is_some());
        let on_time = count(&|s| s.answered_on_time == Some(true));
        assert!(untouched > 100 && untouched < 400, "{untouched}");
        assert!(answered > 300, "{answered}");
        assert!(on_time > answered / 2 && on_time < answered, "{on_time} of {answered}");
        assert!(count(&|s| s.state == State::Declined) > 20);
        let rated = count(&|s| s.rating.is_some());
        assert!(rated > 150, "{rated}");
        let mean = finals.iter().filter_map(|s| s.rating).map(f64::from).sum::<f64>() / rated as f64;
        assert!(mean > 3.5, "{mean}");
        assert!(count(&|s| s.reopen_count > 0) > 5);
        assert!(count(&|s| s.extension_days > 0) > 5);
        assert!(count(&|s| s.state == State::Closed) > 50);
        let redirected =
            steps.iter().flatten().filter(|s| matches!(s.request.action.as_str(), "transfer" | "escalate"));
        assert!(redirected.count() > 5, "transfers and escalations");
        assert!(count(&|s| s.overdue(now)) > 100, "received and stalled petitions fall overdue");
        // The same seed gives the same histories.
        let (again, _) = plans(now);
        let key = |plans: &[Vec<Step>]| -> Vec<Vec<(ActionRequest, DateTime<Utc>)>> {
            plans.iter().map(|p| p.iter().map(|s| (s.request.clone(), s.at)).collect()).collect()
        };
        assert_eq!(key(&again), key(&steps));
    }
}
