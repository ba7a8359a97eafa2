//! Synthetic petitions for demonstrations and benchmarks.
//!
//! Every petition made here is synthetic and says so: channel `demo`, an external id starting
//! with `demo-`, and a closing line "(Dữ liệu tổng hợp ...)". They are spread over the real 2025
//! communes and over the past weeks, and written from themes citizens raise with the Front plus
//! sentences of real Vietnamese news (VNTC, see `data/PROVENANCE.md`) for real vocabulary.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use voxpop_schema::Units;

const NEWS_JSONL: &str = include_str!("../data/vntc_train_sample.jsonl");

/// Themes of the demo petitions: (code, titles, sentences).
const THEMES: &[(&str, &[&str], &[&str])] = &[
    (
        "dat_dai",
        &[
            "Kiến nghị về bồi thường giải phóng mặt bằng",
            "Tranh chấp đất đai chưa được giải quyết",
            "Chậm cấp giấy chứng nhận quyền sử dụng đất",
        ],
        &[
            "Gia đình tôi có đất nằm trong dự án mở rộng đường nhưng mức bồi thường thấp hơn nhiều so với giá thị trường.",
            "Hồ sơ cấp giấy chứng nhận quyền sử dụng đất đã nộp hơn một năm mà vẫn chưa có kết quả.",
            "Việc đo đạc, kiểm đếm đất đai khi giải phóng mặt bằng chưa công khai, minh bạch với người dân.",
            "Đề nghị chính quyền xem xét lại phương án tái định cư cho các hộ bị thu hồi đất.",
        ],
    ),
    (
        "moi_truong",
        &[
            "Phản ánh ô nhiễm từ bãi rác",
            "Khói bụi từ nhà máy gây ảnh hưởng sức khỏe",
            "Nước thải chưa qua xử lý xả ra kênh",
        ],
        &[
            "Bãi rác gần khu dân cư bốc mùi hôi thối, ruồi nhặng nhiều, nhất là khi trời nắng nóng.",
            "Nhà máy xả khói bụi vào ban đêm khiến nhiều hộ dân phải đóng kín cửa.",
            "Nước thải từ cơ sở chế biến chảy thẳng ra kênh làm cá chết hàng loạt.",
            "Đề nghị cơ quan chức năng kiểm tra, xử lý nghiêm tình trạng gây ô nhiễm môi trường.",
        ],
    ),
    (
        "giao_thong",
        &[
            "Đường liên xã xuống cấp nghiêm trọng",
            "Đề nghị lắp đèn chiếu sáng tuyến đường",
            "Cầu dân sinh hư hỏng nguy hiểm",
        ],
        &[
            "Tuyến đường liên xã có nhiều ổ gà, trời mưa ngập nước, xe máy đi lại rất nguy hiểm.",
            "Cây cầu dân sinh đã xuống cấp, lan can gãy, học sinh đi qua hằng ngày rất lo lắng.",
            "Đoạn đường trước cổng trường không có đèn chiếu sáng và biển báo giao thông.",
            "Đề nghị sớm bố trí kinh phí sửa chữa, nâng cấp hạ tầng giao thông nông thôn.",
        ],
    ),
    (
        "an_sinh",
        &[
            "Chậm chi trả trợ cấp cho người có công",
            "Đề nghị xem xét hộ nghèo",
            "Kiến nghị về chế độ cho người cao tuổi",
        ],
        &[
            "Mẹ tôi thuộc diện người có công với cách mạng nhưng trợ cấp tháng này chưa được chi trả.",
            "Việc bình xét hộ nghèo, hộ cận nghèo ở thôn chưa đúng đối tượng, thiếu công khai.",
            "Người cao tuổi trên 80 tuổi trong xóm chưa được hưởng trợ cấp xã hội theo quy định.",
            "Đề nghị rà soát, hỗ trợ kịp thời cho các gia đình chính sách có hoàn cảnh khó khăn.",
        ],
    ),
    (
        "y_te",
        &[
            "Phản ánh về khám chữa bệnh bảo hiểm y tế",
            "Trạm y tế thiếu thuốc",
            "Thủ tục thanh toán bảo hiểm y tế phức tạp",
        ],
        &[
            "Khi khám bệnh bằng thẻ bảo hiểm y tế, người bệnh phải tự mua nhiều loại thuốc bên ngoài.",
            "Trạm y tế xã thiếu thuốc thiết yếu và thiếu bác sĩ trực vào ban đêm.",
            "Thủ tục thanh toán chi phí khám chữa bệnh bảo hiểm y tế còn rườm rà, mất nhiều thời gian.",
            "Đề nghị tăng cường kiểm tra chất lượng khám chữa bệnh tại tuyến cơ sở.",
        ],
    ),
    (
        "giao_duc",
        &["Kiến nghị về các khoản thu đầu năm học", "Trường học xuống cấp", "Thiếu giáo viên tại điểm trường"],
        &[
            "Đầu năm học, phụ huynh phải đóng nhiều khoản thu ngoài quy định mà không được giải thích rõ.",
            "Phòng học ở điểm trường lẻ bị dột nát, bàn ghế hư hỏng, không bảo đảm an toàn cho học sinh.",
            "Điểm trường thiếu giáo viên tiếng Anh và tin học trong nhiều tháng.",
            "Đề nghị ngành giáo dục kiểm tra, chấn chỉnh việc thu chi trong nhà trường.",
        ],
    ),
    (
        "thu_tuc",
        &["Thủ tục hành chính kéo dài", "Phản ánh thái độ cán bộ một cửa", "Dịch vụ công trực tuyến gặp lỗi"],
        &[
            "Tôi nộp hồ sơ tại bộ phận một cửa đã quá hạn hẹn nhưng chưa nhận được kết quả.",
            "Cán bộ tiếp nhận hồ sơ yêu cầu bổ sung giấy tờ nhiều lần, mỗi lần một kiểu.",
            "Cổng dịch vụ công trực tuyến thường xuyên bị lỗi khi nộp hồ sơ và thanh toán lệ phí.",
            "Đề nghị cải cách thủ tục hành chính, công khai thời hạn giải quyết hồ sơ.",
        ],
    ),
    (
        "tham_nhung",
        &[
            "Tố cáo sai phạm trong quản lý đất công",
            "Phản ánh dấu hiệu tiêu cực trong xây dựng",
            "Kiến nghị công khai tài chính thôn",
        ],
        &[
            "Một số cán bộ thôn có dấu hiệu sử dụng đất công ích sai mục đích, không công khai cho dân biết.",
            "Công trình nhà văn hóa mới xây đã bị nứt, nghi ngờ có sai phạm trong thi công.",
            "Các khoản đóng góp xây dựng đường làng chưa được công khai thu chi rõ ràng.",
            "Đề nghị thanh tra, làm rõ và xử lý nghiêm nếu có sai phạm.",
        ],
    ),
    (
        "an_ninh",
        &["Phản ánh tình trạng trộm cắp tài sản", "Tụ tập gây mất trật tự ban đêm", "Đua xe trái phép trên quốc lộ"],
        &[
            "Thời gian gần đây trong khu dân cư xảy ra nhiều vụ trộm cắp xe máy, gia súc.",
            "Nhóm thanh niên thường tụ tập, uống rượu, gây ồn ào đến khuya.",
            "Tình trạng đua xe trái phép vào cuối tuần gây nguy hiểm cho người đi đường.",
            "Đề nghị công an tăng cường tuần tra, bảo đảm an ninh trật tự tại địa phương.",
        ],
    ),
    (
        "viec_lam",
        &[
            "Doanh nghiệp nợ lương người lao động",
            "Đề nghị hỗ trợ việc làm cho thanh niên",
            "Chậm đóng bảo hiểm xã hội cho công nhân",
        ],
        &[
            "Công ty đã nợ lương công nhân ba tháng và chưa đóng bảo hiểm xã hội.",
            "Nhiều thanh niên trong xã không có việc làm ổn định sau khi học xong.",
            "Người lao động bị cho nghỉ việc nhưng không được giải quyết chế độ theo quy định.",
            "Đề nghị cơ quan quản lý lao động vào cuộc bảo vệ quyền lợi người lao động.",
        ],
    ),
    (
        "gia_ca",
        &["Giá điện tăng cao bất thường", "Giá vật tư nông nghiệp tăng", "Phản ánh giá cả chợ dân sinh"],
        &[
            "Hóa đơn tiền điện tháng này tăng gấp đôi dù gia đình không sử dụng thêm thiết bị nào.",
            "Giá phân bón, thuốc bảo vệ thực vật tăng mạnh khiến người trồng lúa thua lỗ.",
            "Tiểu thương ở chợ phản ánh phí thuê ki-ốt tăng cao trong khi sức mua giảm.",
            "Đề nghị kiểm tra, bình ổn giá cả các mặt hàng thiết yếu.",
        ],
    ),
    (
        "nong_nghiep",
        &["Kiến nghị tiêu thụ nông sản", "Thiếu nước tưới cho vụ đông xuân", "Dịch bệnh trên đàn gia súc"],
        &[
            "Vải thiều, thanh long vào vụ nhưng thương lái ép giá, nông dân không tiêu thụ được.",
            "Kênh mương nội đồng bị bồi lắng, không đủ nước tưới cho vụ đông xuân.",
            "Dịch tả lợn châu Phi xuất hiện trở lại, người chăn nuôi chưa được hỗ trợ tiêu hủy.",
            "Đề nghị hỗ trợ giống, vốn và kết nối tiêu thụ nông sản cho bà con.",
        ],
    ),
];

const OPENINGS: &[&str] = &[
    "Kính gửi Ủy ban Mặt trận Tổ quốc,",
    "Kính gửi Ban Thường trực Mặt trận,",
    "Tôi là người dân sinh sống tại địa phương, xin phản ánh như sau:",
    "Thay mặt các hộ dân trong khu dân cư, chúng tôi kiến nghị:",
];
const SURNAMES: &[&str] =
    &["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương"];
const GIVEN: &[&str] = &[
    "Văn An",
    "Thị Bình",
    "Văn Cường",
    "Thị Dung",
    "Minh Đức",
    "Thị Hoa",
    "Quốc Hùng",
    "Thị Lan",
    "Văn Nam",
    "Thị Mai",
    "Hữu Phúc",
    "Thanh Tâm",
];

/// Generates synthetic petition submissions (JSON, the intake's wire format).
pub struct DemoGenerator {
    rng: StdRng,
    seed: u64,
    next: u64,
    sentences: Vec<String>,
    communes: Vec<(String, Option<f64>, Option<f64>)>,
    now: DateTime<Utc>,
    /// How far back receipts are spread.
    pub weeks: i64,
    /// Approximate body length in bytes.
    pub body_bytes: usize,
}

impl DemoGenerator {
    pub fn new(seed: u64) -> DemoGenerator {
        let sentences = news_sentences();
        let communes = Units::embedded().communes().iter().map(|c| (c.code.clone(), c.lat, c.lon)).collect();
        DemoGenerator {
            rng: StdRng::seed_from_u64(seed),
            seed,
            next: 0,
            sentences,
            communes,
            now: Utc::now(),
            weeks: 12,
            body_bytes: 1_000,
        }
    }

    /// The next synthetic submission.
    pub fn submission(&mut self) -> Value {
        let number = self.next;
        self.next += 1;
        let (theme, titles, theme_sentences) = THEMES.choose(&mut self.rng).expect("themes");
        let (commune, lat, lon) = self.communes.choose(&mut self.rng).expect("communes").clone();
        let mut body = String::with_capacity(self.body_bytes + 200);
        body.push_str(OPENINGS.choose(&mut self.rng).expect("openings"));
        body.push(' ');
        let mut picked: Vec<&&str> = theme_sentences.choose_multiple(&mut self.rng, 3).collect();
        picked.sort();
        for sentence in picked {
            body.push_str(sentence);
            body.push(' ');
        }
        while body.len() < self.body_bytes.saturating_sub(120) {
            body.push_str(self.sentences.choose(&mut self.rng).expect("sentences"));
            body.push(' ');
        }
        body.push_str("(Dữ liệu tổng hợp dùng cho trình diễn, không phải kiến nghị thật.)");
        let seconds_back = self.rng.random_range(0..(self.weeks * 7 * 24 * 3600).max(1));
        let submitted_at = self.now - Duration::seconds(seconds_back);
        let name = format!(
            "{} {}",
            SURNAMES.choose(&mut self.rng).expect("surnames"),
            GIVEN.choose(&mut self.rng).expect("names")
        );
        let phone = format!("09{:08}", self.rng.random_range(0..100_000_000u32));
        let mut submission = json!({
            "title": format!("{} (dữ liệu tổng hợp)", titles.choose(&mut self.rng).expect("titles")),
            "body": body,
            "commune_code": commune,
            "channel": "demo",
            "external_id": format!("demo-{}-{number}-{theme}", self.seed),
            "submitted_at": submitted_at.to_rfc3339(),
            "contact": {"name": name, "phone": phone},
        });
        if let (Some(lat), Some(lon)) = (lat, lon) {
            let jitter = |rng: &mut StdRng| rng.random_range(-0.01..0.01);
            submission["lat"] = json!(lat + jitter(&mut self.rng));
            submission["lon"] = json!(lon + jitter(&mut self.rng));
        }
        submission
    }
}

/// Sentences of 40 to 300 bytes from the news sample.
fn news_sentences() -> Vec<String> {
    let mut sentences = Vec::new();
    for line in NEWS_JSONL.lines() {
        let Ok(article) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(text) = article.get("text").and_then(Value::as_str) else {
            continue;
        };
        for sentence in text.split_inclusive(['.', '!', '?']) {
            let sentence = sentence.trim();
            if (40..=300).contains(&sentence.len()) && !sentence.contains("http") {
                sentences.push(voxpop_schema::text::nfc(sentence));
            }
        }
    }
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxpop_schema::Submission;

    #[test]
    fn generated_petitions_are_valid_synthetic_and_about_1_kb() {
        let mut generator = DemoGenerator::new(7);
        let units = Units::embedded();
        let mut total = 0;
        for _ in 0..200 {
            let value = generator.submission();
            let submission =
                Submission::from_json(&value, units, Utc::now()).unwrap_or_else(|errors| panic!("{errors:?}"));
            assert!(submission.body.contains("Dữ liệu tổng hợp"));
            assert!(submission.external_id.as_deref().unwrap().starts_with("demo-7-"));
            total += submission.body.len();
        }
        let mean = total / 200;
        assert!((800..=1_300).contains(&mean), "mean body {mean} bytes");
    }

    #[test]
    fn same_seed_same_petitions() {
        let mut a = DemoGenerator::new(1);
        let mut b = DemoGenerator::new(1);
        b.now = a.now;
        for _ in 0..5 {
            assert_eq!(a.submission(), b.submission());
        }
    }
}
