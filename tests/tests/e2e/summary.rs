//! The weekly summary over the lake, through the API and the CLI.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use voxpop_tests::server::{Server, voxpop_bin};

#[tokio::test(flavor = "multi_thread")]
async fn weekly_summary_counts_changes_and_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let client = reqwest::Client::new();
    // Imported records keep the time the other system received them.
    let rows = [
        ("00004", "2025-09-16T10:00:00+07:00"),
        ("00004", "2025-09-18T09:30:00+07:00"),
        ("00976", "2025-09-20T15:00:00+07:00"),
        ("00004", "2025-09-10T08:00:00+07:00"),
        // Monday of week 36 in Vietnam, still Sunday of week 35 in UTC.
        ("00976", "2025-09-01T05:00:00+07:00"),
    ];
    let mut acked = HashSet::new();
    for (n, (commune, at)) in rows.iter().enumerate() {
        let petition = json!({
            "title": format!("Kiến nghị nhập từ hệ thống khác số {n}"),
            "body": "Đề nghị sửa chữa đường giao thông nông thôn bị xuống cấp. Dữ liệu tổng hợp.",
            "commune_code": commune, "channel": "import", "external_id": format!("lgsp-{n}"), "submitted_at": at,
        });
        acked.insert(server.submit(&petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let summary = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38")]).await;
    assert_eq!(summary["total"], 3, "{summary}");
    assert_eq!(summary["previous_week"], "2025-W37");
    assert_eq!(summary["previous_total"], 1);
    assert_eq!(summary["change_percent"], 200.0);
    assert_eq!(summary["by_province"][0]["province_code"], "01");
    assert_eq!(summary["by_province"][0]["count"], 2);
    assert_eq!(summary["by_province"][0]["previous"], 1);
    assert_eq!(summary["by_province"].as_array().unwrap().len(), 34, "every province, zeros included");
    assert_eq!(summary["communes_with_petitions"]["text"], "2/3,321 (0.06%)");
    assert_eq!(summary["by_language"][0]["key"], "vi");
    assert_eq!(summary["by_channel"][0]["key"], "import");
    // "xuống cấp" is a rule of the infrastructure topic: assigned by the pipeline.
    let top = &summary["by_topic"][0];
    assert_eq!(
        (top["code"].as_str(), top["count"].as_u64(), top["previous"].as_u64()),
        (Some("infrastructure"), Some(3), Some(1))
    );
    assert_eq!(top["label"], "Đường sá và hạ tầng");
    let weekly = top["weekly"].as_array().unwrap();
    assert_eq!(weekly.len(), 12);
    assert_eq!(weekly[10..], [json!(1), json!(3)]);
    assert_eq!(summary["trend_weeks"][11], "2025-W38");
    assert_eq!(summary["topic_matrix"]["topics"][0], "infrastructure");
    assert_eq!(summary["topic_matrix"]["provinces"][0], "01");
    assert_eq!(summary["topic_matrix"]["counts"][0][0], 2);

    let hanoi = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38"), ("province", "01")]).await;
    assert_eq!(hanoi["total"], 2, "{hanoi}");
    assert_eq!(hanoi["communes_with_petitions"]["text"], "1/126 (0.79%)");

    for (query, field) in [("week=2025-38", "week"), ("week=2025-W38&province=99", "province"), ("weeks=1", "weeks")] {
        let response = client.get(server.url(&format!("/api/v1/summaries/weekly?{query}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }

    let output = Command::new(voxpop_bin())
        .args(["summary", "--week", "2025-W38", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Tuần 2025-W38: 3 kiến nghị (tuần 2025-W37: 1, +200.0%)"), "{text}");
    assert!(text.contains("2/3,321 (0.06%)"), "{text}");
    assert!(text.contains("Đường sá và hạ tầng"), "topics in the CLI summary: {text}");
    // The three share one text: one matter raised three times.
    assert!(text.contains("ứng với khoảng 1 vụ việc"), "{text}");

    // Days and weeks are Vietnam's: the petition of Monday 05:00 there is on that day and in
    // that week, though it is still Sunday in UTC.
    let monday =
        server.get_json("/api/v1/search", &[("q", "đường"), ("from", "2025-09-01"), ("to", "2025-09-01")]).await;
    assert_eq!(monday["total"], 1, "{monday}");
    let sunday =
        server.get_json("/api/v1/search", &[("q", "đường"), ("from", "2025-08-31"), ("to", "2025-08-31")]).await;
    assert_eq!(sunday["total"], 0, "{sunday}");
    let week_36 = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W36")]).await;
    assert_eq!((week_36["total"].as_u64(), week_36["complete"].as_bool()), (Some(1), Some(true)), "{week_36}");
    // Without a week: the last one that has ended in Vietnam.
    let latest = server.get_json("/api/v1/summaries/weekly", &[]).await;
    let expected = voxpop_queries::summary::IsoWeek::last_ended(chrono::Utc::now()).label();
    assert_eq!(latest["week"], expected, "{latest}");
    assert_eq!(latest["complete"], true, "{latest}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_summary_finds_the_spike_the_new_theme_and_the_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let mut acked = HashSet::new();
    let mut n = 0;
    let mut submit = |title: String, body: String, commune: &'static str, at: String, phone: Option<String>| {
        n += 1;
        let mut petition = json!({"title": title, "body": body, "commune_code": commune, "channel": "import",
            "external_id": format!("sig-{n}"), "submitted_at": at});
        if let Some(phone) = phone {
            petition["contact"] = json!({"phone": phone});
        }
        petition
    };
    let mut petitions = Vec::new();
    // Eight quiet weeks: two road petitions a week in Hà Nội (W30..W37).
    for week in 0..8 {
        for k in 0..2 {
            let day = 21 + week * 7 + k; // Mondays of 2025-W30.. plus k days
            let at = (chrono::NaiveDate::from_ymd_opt(2025, 7, 1).unwrap() + chrono::Duration::days(day as i64 - 1))
                .format("%Y-%m-%dT09:00:00+07:00")
                .to_string();
            petitions.push(submit(
                format!("Đường giao thông xuống cấp số {week}-{k}"),
                "Mặt đường nhiều ổ gà, đề nghị sửa chữa sớm. Dữ liệu tổng hợp.".to_owned(),
                "00004",
                at,
                None,
            ));
        }
    }
    // 2025-W38: twelve households complain about the same landfill (a campaign, and a spike of
    // the environment topic in Hà Nội), with a new theme: "bãi rác".
    for k in 0..12 {
        petitions.push(submit(
            "Bãi rác tự phát gây ô nhiễm".to_owned(),
            format!(
                "Bãi rác tự phát cạnh khu dân cư tổ {} bốc mùi hôi thối, ruồi nhặng nhiều, nước rỉ rác chảy ra mương. \
                 Đề nghị chính quyền khẩn trương thu gom và xử lý dứt điểm bãi rác này. Dữ liệu tổng hợp.",
                k % 3 + 1
            ),
            "00004",
            format!("2025-09-{:02}T10:00:00+07:00", 15 + k % 5),
            Some(format!("09{:08}", 10_000_000 + k)),
        ));
    }
    for petition in &petitions {
        acked.insert(server.submit(petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let summary = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38")]).await;
    assert_eq!(summary["total"], 12, "{summary}");
    let spike = &summary["spikes"][0];
    assert_eq!(
        (spike["topic"].as_str(), spike["province_code"].as_str()),
        (Some("environment"), Some("01")),
        "{summary}"
    );
    assert_eq!(spike["count"], 12);
    let terms: Vec<&str> =
        summary["rising_terms"].as_array().unwrap().iter().map(|t| t["term"].as_str().unwrap()).collect();
    assert!(terms.iter().take(3).any(|t| *t == "bãi rác"), "{terms:?}");
    let campaign = &summary["campaigns"][0];
    assert_eq!(campaign["size"], 12, "{summary}");
    assert_eq!(campaign["citizens"], 12);
    assert_eq!(campaign["communes"], json!(["00004"]));
    assert_eq!(summary["distinct_matters"], 1);
    // The excerpt carries no contact details.
    assert!(!campaign.to_string().contains("0910000000"));

    let page = reqwest::get(server.url("/tong-hop?week=2025-W38")).await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"spikes\"") && page.contains("id=\"campaigns\"") && page.contains("bãi rác"), "{page}");
}

/// The summaries group over the snapshot's live files with DataFusion's own Parquet scan
/// (queries/src/live_files.rs): after a compaction the replaced files stay on disk, and the
/// grouping reads must still count every petition once, as the Delta scan does.
#[tokio::test(flavor = "multi_thread")]
async fn grouping_reads_count_each_petition_once_after_compaction() {
    use std::collections::BTreeMap;
    use voxpop_pipeline::Topic;
    use voxpop_pipeline::lake::PetitionLake;
    use voxpop_queries::summary::{IsoWeek, bench_topic_counts, bench_topic_counts_sql};
    use voxpop_schema::Petition;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake/petitions");
    let mut lake = PetitionLake::open_or_create(&path).await.unwrap();
    let monday = chrono::DateTime::parse_from_rfc3339("2025-09-15T03:00:00Z").unwrap().to_utc();
    let communes = ["00004", "00976", "26734"];
    let topics = ["infrastructure", "environment", "land"];
    for commit in 0..4i64 {
        let petitions: Vec<Petition> = (0..30)
            .map(|n| {
                let at = monday - chrono::Duration::days(7 * (n % 3)) + chrono::Duration::hours(commit);
                let mut builder = Petition::builder()
                    .title(&format!("Kiến nghị {commit}-{n}"))
                    .commune(communes[n as usize % 3])
                    .received_at(at);
                if n % 5 != 0 {
                    builder = builder.topic(topics[(n as usize / 2) % 3], 1.0);
                }
                builder.build()
            })
            .collect();
        lake.append(Topic::Petitions, &petitions, &BTreeMap::from([(0, (commit + 1) * 30)])).await.unwrap();
    }
    let before = parquet_files(&path);
    lake.compact().await.unwrap();
    let after = parquet_files(&path);
    assert!(after > before, "compaction wrote new files ({before} -> {after}) and left the replaced ones");

    let queries = voxpop_queries::PetitionQueries::new(&path);
    let ctx = queries.session().await.unwrap().unwrap();
    let week = IsoWeek { year: 2025, week: 38 };
    let mut trend = vec![week];
    while trend.len() < 12 {
        trend.push(trend.last().unwrap().previous());
    }
    let weeks: Vec<String> = trend.iter().map(|w| w.label()).collect();
    let mut grouped = bench_topic_counts(&ctx, &weeks).await.unwrap();
    let mut plain = bench_topic_counts_sql(&ctx, &weeks).await.unwrap();
    grouped.sort();
    plain.sort();
    assert_eq!(grouped, plain);
    assert_eq!(grouped.iter().map(|(_, n)| n).sum::<u64>(), 120, "{grouped:?}");
    assert!(grouped.iter().any(|(key, _)| key[1] == voxpop_queries::summary::UNCLASSIFIED), "{grouped:?}");
    // The summary counts on the codes' dictionary keys: no hash aggregate in its plan.
    let plan = voxpop_queries::summary::bench_topic_counts_explain(&ctx, &weeks).await.unwrap();
    assert!(plan.contains("DataSourceExec") && !plan.contains("AggregateExec"), "{plan}");
    let summary = queries.weekly_summary(week, None).await.unwrap();
    assert_eq!(summary.total, 40);
    assert_eq!(summary.previous_total, 40);
    // One province: a filter on a dictionary column, counted the same way.
    let units = voxpop_schema::Units::embedded();
    let province = &units.commune("00004").unwrap().province_code;
    let in_province = |weeks_back: i64| {
        let rows = (0..30i64)
            .filter(|n| n % 3 == weeks_back)
            .filter(|n| units.commune(communes[*n as usize % 3]).unwrap().province_code == *province);
        4 * rows.count() as u64
    };
    let summary = queries.weekly_summary(week, Some(province)).await.unwrap();
    assert_eq!((summary.total, summary.previous_total), (in_province(0), in_province(1)), "{province}");
}

fn parquet_files(dir: &std::path::Path) -> usize {
    walk(dir).iter().filter(|path| path.extension().is_some_and(|ext| ext == "parquet")).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { found.extend(walk(&path)) } else { found.push(path) }
    }
    found
}

/// Six similar petitions repeating their organiser's phone and email (synthetic data): the
/// rising terms, the campaign and the summary page show neither, to a caller without personal
/// data (open mode: no tokens configured).
#[tokio::test(flavor = "multi_thread")]
async fn summary_rising_terms_carry_no_phone_or_email() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None).await;
    let mut petitions = Vec::new();
    // Eight quiet weeks before (W30..W37): road petitions, no contact details in the text.
    for week in 0..8i64 {
        for k in 0..2i64 {
            let at = chrono::NaiveDate::from_ymd_opt(2025, 7, 21).unwrap() + chrono::Duration::days(7 * week + k);
            petitions.push(json!({
                "title": format!("Đường giao thông xuống cấp số {week}-{k}"),
                "body": "Mặt đường nhiều ổ gà, đề nghị sửa chữa sớm. Dữ liệu tổng hợp.",
                "commune_code": "00004", "channel": "import", "external_id": format!("quiet-{week}-{k}"),
                "submitted_at": at.format("%Y-%m-%dT09:00:00+07:00").to_string(),
            }));
        }
    }
    for k in 0..6 {
        petitions.push(json!({
            "title": "Bãi rác tự phát gây ô nhiễm",
            "body": format!(
                "Bãi rác tự phát cạnh tổ {} bốc mùi. Số điện thoại 0977888999 email dong.pham@example.com. \
                 Đề nghị thu gom. Dữ liệu tổng hợp.",
                k % 3 + 1
            ),
            "commune_code": "00004", "channel": "import", "external_id": format!("contact-{k}"),
            "submitted_at": format!("2025-09-{:02}T10:00:00+07:00", 15 + k % 5),
        }));
    }
    let mut acked = HashSet::new();
    for petition in &petitions {
        acked.insert(server.submit(petition).await);
    }
    server.wait_for_ids(&acked, Duration::from_secs(30)).await;

    let summary = server.get_json("/api/v1/summaries/weekly", &[("week", "2025-W38")]).await;
    assert_eq!(summary["total"], 6, "{summary}");
    let terms: Vec<&str> =
        summary["rising_terms"].as_array().unwrap().iter().map(|t| t["term"].as_str().unwrap()).collect();
    assert!(terms.contains(&"bãi rác"), "the theme still rises: {terms:?}");
    for term in &terms {
        assert!(!term.contains("0977") && !term.contains("999"), "a phone in a rising term: {terms:?}");
        for part in ["dong", "pham", "example"] {
            assert!(!term.split(' ').any(|s| s == part), "`{part}` of an email in a rising term: {terms:?}");
        }
    }
    // The campaign's excerpt is masked like every text: the phone and the email address too.
    let whole = summary.to_string();
    assert!(!whole.contains("0977888999") && !whole.contains("dong.pham"), "{whole}");
    assert!(whole.contains("*******999") && whole.contains("d***@example.com"), "{whole}");

    let page = reqwest::get(server.url("/tong-hop?week=2025-W38")).await.unwrap().text().await.unwrap();
    assert!(page.contains("bãi rác"), "{page}");
    assert!(!page.contains("0977888999") && !page.contains("dong.pham") && !page.contains("dong pham"), "{page}");

    // The week is exactly `YYYY-Www`: anything looser is a 400 naming `week`.
    let client = reqwest::Client::new();
    for week in ["%202025-W38", "%2B2025-W38", "2025-W1", "2025-w38", "2025-W38%20"] {
        let response = client.get(server.url(&format!("/api/v1/summaries/weekly?week={week}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{week}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "week", "{week}: {problem}");
    }
}

/// Weeks begin on Monday 00:00 in Vietnam (UTC+7); a week in progress is compared with the same
/// span of the week before, not with that whole week.
#[tokio::test(flavor = "multi_thread")]
async fn weeks_are_vietnams_and_a_week_in_progress_is_compared_like_for_like() {
    use std::collections::BTreeMap;
    use voxpop_pipeline::Topic;
    use voxpop_pipeline::lake::PetitionLake;
    use voxpop_queries::summary::IsoWeek;
    use voxpop_schema::Petition;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lake/petitions");
    let mut lake = PetitionLake::open_or_create(&path).await.unwrap();
    let at = |text: &str| chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc();
    let times = [
        // Week 37: Monday morning, Friday, and Sunday 23:30 in Vietnam (16:30 UTC).
        "2025-09-08T09:00:00+07:00",
        "2025-09-12T15:00:00+07:00",
        "2025-09-14T23:30:00+07:00",
        // Week 38: Monday 06:00 in Vietnam, still Sunday (week 37) in UTC; and Wednesday.
        "2025-09-15T06:00:00+07:00",
        "2025-09-17T10:00:00+07:00",
        // Week 39: Monday 01:00 in Vietnam, Sunday 18:00 UTC.
        "2025-09-22T01:00:00+07:00",
    ];
    let hotline = voxpop_schema::petition::Channel::Hotline;
    let petitions: Vec<Petition> = times
        .iter()
        .map(|t| {
            Petition::builder().title("Đường xuống cấp").commune("00004").channel(hotline).received_at(at(t)).build()
        })
        .collect();
    lake.append(Topic::Petitions, &petitions, &BTreeMap::from([(0, 6)])).await.unwrap();
    let queries = voxpop_queries::PetitionQueries::new(&path);
    let week = IsoWeek { year: 2025, week: 38 };
    assert_eq!(week.start(), at("2025-09-15T00:00:00+07:00"));
    assert_eq!(IsoWeek::of(at("2025-09-15T06:00:00+07:00")), week);
    assert_eq!(IsoWeek::last_ended(at("2025-09-22T00:30:00+07:00")), week);

    // After the week: whole weeks, Vietnam's.
    let ended = queries.weekly_summary_at(week, None, None, at("2025-09-23T08:00:00+07:00")).await.unwrap();
    assert_eq!((ended.total, ended.previous_total), (2, 3));
    assert!(ended.complete);
    assert_eq!((ended.counted_until, ended.previous_to_date), (None, None));
    assert_eq!(ended.change_percent.map(|p| p.round()), Some(-33.0));

    // Wednesday 12:00 of week 38: both of its petitions so far, against the one of week 37 by
    // Wednesday 12:00 (Monday 09:00), not against all three.
    let now = at("2025-09-17T12:00:00+07:00");
    let midweek = queries.weekly_summary_at(week, None, None, now).await.unwrap();
    assert!(!midweek.complete);
    assert_eq!(midweek.counted_until, Some(now));
    assert_eq!((midweek.total, midweek.previous_total, midweek.previous_to_date), (2, 3, Some(1)));
    assert_eq!(midweek.change_percent, Some(100.0));
    // The province's and the topics' `previous` are the same span too; the trend keeps whole weeks.
    assert_eq!((midweek.by_province[0].province_code.as_str(), midweek.by_province[0].previous), ("01", 1));
    assert_eq!(ended.by_province[0].previous, 3);
    assert_eq!(midweek.by_topic.iter().map(|t| t.previous).sum::<u64>(), 1, "{:?}", midweek.by_topic);
    assert_eq!(midweek.by_topic.iter().map(|t| t.weekly[10]).sum::<u64>(), 3, "{:?}", midweek.by_topic);
    let json = serde_json::to_value(&midweek).unwrap();
    assert_eq!(json["complete"], false);
    assert_eq!(json["previous_to_date"], 1);
    assert!(json["counted_until"].is_string(), "{json}");
    assert_eq!(midweek.by_channel[0].label, "Đường dây nóng", "{:?}", midweek.by_channel);

    // A look-up by id finds the Monday-morning petition in its week.
    let monday = &petitions[3];
    assert_eq!(monday.received_week(), "2025-W38");
    let found = queries.petition(&monday.id, Some(monday.received_at)).await.unwrap();
    assert_eq!(found.map(|p| p.id), Some(monday.id));
}
