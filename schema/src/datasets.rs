//! The datasets voxpop exchanges with national databases, described from the code.
//!
//! Each dataset is an Arrow schema (the one the lake or the reference data really uses) plus a
//! description of every column in Vietnamese and English, its constraints and the keys that join
//! it to the national code lists. From that one definition come the Frictionless Table Schemas
//! of exported Data Packages ([`DatasetSpec::table_schema`]) and the reference page
//! `docs/SCHEMA.md` ([`reference_markdown`]); a test fails when a column has no description, so
//! the documentation cannot drift from the tables.
//!
//! The lake's tables (`petitions`, the handling tables `petition_events` and `petition_status`,
//! `weekly_reports`) are described with the very Arrow schemas the pipeline writes them with, so
//! an export's Table Schema is the table's schema.
//!
//! Administrative units form a versioned code list: every row carries `valid_from` and
//! `valid_to`. The 2025 units are valid from 2025-07-01 (the reform); pre-2025 communes until
//! 2025-06-30, and stay resolvable through `unit_crosswalk_2025`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::petition::{self, Channel, MAX_BODY_CHARS, MAX_TITLE_CHARS};
use crate::reports::{self, Level, Source};
use crate::units::Units;
use crate::workflow::{self, Action, State};

/// Date the 2025 administrative units took effect.
pub const REFORM_DATE: (i32, u32, u32) = (2025, 7, 1);

/// One column: names, descriptions and constraints.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDoc {
    pub name: &'static str,
    pub title_vi: &'static str,
    pub title_en: &'static str,
    pub description_vi: &'static str,
    pub description_en: &'static str,
    /// Frictionless `format` (e.g. `uuid`, `email`), if any.
    pub format: Option<&'static str>,
    pub constraints: Constraints,
}

/// Frictionless field constraints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub required: bool,
    pub unique: bool,
    pub pattern: Option<&'static str>,
    pub enumeration: Option<Vec<String>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub max_length: Option<usize>,
}

/// A foreign key: `fields` of this dataset reference `reference_fields` of `resource`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub fields: Vec<&'static str>,
    pub resource: &'static str,
    pub reference_fields: Vec<&'static str>,
}

/// A dataset of the national schema.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub name: &'static str,
    pub title_vi: &'static str,
    pub title_en: &'static str,
    pub description_vi: &'static str,
    pub description_en: &'static str,
    pub schema: SchemaRef,
    pub columns: Vec<ColumnDoc>,
    pub primary_key: Vec<&'static str>,
    pub foreign_keys: Vec<ForeignKey>,
}

fn required() -> Constraints {
    Constraints { required: true, ..Constraints::default() }
}

fn pattern(pattern: &'static str, required: bool) -> Constraints {
    Constraints { required, pattern: Some(pattern), ..Constraints::default() }
}

#[allow(clippy::too_many_arguments)]
fn column(
    name: &'static str,
    title_vi: &'static str,
    title_en: &'static str,
    description_vi: &'static str,
    description_en: &'static str,
    format: Option<&'static str>,
    constraints: Constraints,
) -> ColumnDoc {
    ColumnDoc { name, title_vi, title_en, description_vi, description_en, format, constraints }
}

const PROVINCE_CODE: &str = "^[0-9]{2}$";
const COMMUNE_CODE: &str = "^[0-9]{5}$";
/// A unit of the Front: `00` (central), a province, a 2025 commune or a village (`ccccc-nnn`).
const UNIT_CODE: &str = "^[0-9]{2}([0-9]{3}(-[0-9]{3})?)?$";
const TRACKING_CODE: &str = "^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$";
const TOPIC_CODE: &str = "^[a-z][a-z0-9_]*$";

fn validity_columns() -> Vec<ColumnDoc> {
    vec![
        column(
            "valid_from",
            "Hiệu lực từ",
            "Valid from",
            "Ngày mã bắt đầu có hiệu lực; trống nếu không rõ.",
            "Date the code took effect; empty when unknown.",
            None,
            Constraints::default(),
        ),
        column(
            "valid_to",
            "Hiệu lực đến",
            "Valid to",
            "Ngày cuối cùng mã còn hiệu lực; trống nếu đang hiệu lực.",
            "Last day the code was in force; empty while in force.",
            None,
            Constraints::default(),
        ),
    ]
}

fn date_fields() -> Vec<Field> {
    vec![Field::new("valid_from", DataType::Date32, true), Field::new("valid_to", DataType::Date32, true)]
}

/// Every dataset, in the order packages list them.
pub fn datasets() -> Vec<DatasetSpec> {
    vec![
        petitions(),
        petition_events(),
        petition_status(),
        weekly_reports(),
        provinces(),
        communes(),
        communes_pre2025(),
        crosswalk(),
    ]
}

/// The datasets that are Delta tables under the lake directory (the others are code lists
/// compiled into the binary, see [`DatasetSpec::reference_batch`]).
pub const LAKE_DATASETS: [&str; 4] =
    [petition::TABLE_NAME, workflow::EVENTS_TABLE, workflow::STATUS_TABLE, reports::TABLE_NAME];

/// The dataset called `name`.
pub fn dataset(name: &str) -> Option<DatasetSpec> {
    datasets().into_iter().find(|spec| spec.name == name)
}

fn petitions() -> DatasetSpec {
    let channels = Channel::ALL.iter().map(|c| c.as_str().to_owned()).collect();
    let columns = vec![
        column(
            "id",
            "Mã định danh",
            "Identifier",
            "UUID phiên bản 7, sắp theo thời điểm tiếp nhận.",
            "UUID version 7, sortable by time of receipt.",
            Some("uuid"),
            Constraints { required: true, unique: true, ..Constraints::default() },
        ),
        column(
            "tracking_code",
            "Mã tra cứu",
            "Tracking code",
            "Mã người dân dùng để theo dõi kiến nghị.",
            "Code the citizen types to follow the petition.",
            None,
            pattern(TRACKING_CODE, true),
        ),
        column(
            "received_at",
            "Thời điểm tiếp nhận",
            "Received at",
            "Thời điểm hệ thống tiếp nhận (UTC).",
            "When the system received it (UTC).",
            None,
            required(),
        ),
        column(
            petition::PARTITION_COLUMN,
            "Tuần tiếp nhận",
            "Week received",
            "Tuần ISO của thời điểm tiếp nhận theo giờ Việt Nam (tuần bắt đầu 00:00 thứ Hai, UTC+7), ví dụ 2025-W38.",
            "ISO week of receipt in Vietnam's time (weeks begin on Monday 00:00 at UTC+7), e.g. 2025-W38.",
            None,
            pattern("^[0-9]{4}-W[0-9]{2}$", true),
        ),
        column(
            "submitted_at",
            "Thời điểm gửi",
            "Submitted at",
            "Thời điểm người dân viết/gửi, nếu kênh tiếp nhận biết.",
            "When the citizen wrote or sent it, if the channel knows.",
            None,
            Constraints::default(),
        ),
        column(
            "channel",
            "Kênh tiếp nhận",
            "Channel",
            "Kênh gửi kiến nghị.",
            "How the petition arrived.",
            None,
            Constraints { required: true, enumeration: Some(channels), ..Constraints::default() },
        ),
        column(
            "external_id",
            "Mã ở hệ thống gửi",
            "External id",
            "Mã của hệ thống gửi; duy nhất trong mỗi kênh.",
            "The sending system's own id; unique per channel.",
            None,
            Constraints::default(),
        ),
        column(
            "title",
            "Tiêu đề",
            "Title",
            "Tiêu đề kiến nghị (Unicode NFC).",
            "Petition title (Unicode NFC).",
            None,
            Constraints { required: true, max_length: Some(MAX_TITLE_CHARS), ..Constraints::default() },
        ),
        column(
            "body",
            "Nội dung",
            "Body",
            "Nội dung kiến nghị (Unicode NFC); số điện thoại, số định danh có thể đã được che.",
            "Petition text (Unicode NFC); phone and ID numbers may be masked.",
            None,
            Constraints { required: true, max_length: Some(MAX_BODY_CHARS), ..Constraints::default() },
        ),
        column(
            "language",
            "Ngôn ngữ",
            "Language",
            "Mã ngôn ngữ ISO 639-1 do hệ thống nhận dạng.",
            "ISO 639-1 code detected by the pipeline.",
            None,
            pattern("^[a-z]{2}$", false),
        ),
        column(
            "province_code",
            "Mã tỉnh",
            "Province code",
            "Mã tỉnh, thành phố (danh mục 2025).",
            "Province code (2025 list).",
            None,
            pattern(PROVINCE_CODE, true),
        ),
        column(
            "commune_code",
            "Mã xã",
            "Commune code",
            "Mã xã, phường, đặc khu đang có hiệu lực (danh mục 2025).",
            "Commune code in force (2025 list).",
            None,
            pattern(COMMUNE_CODE, true),
        ),
        column(
            "original_unit_code",
            "Mã đơn vị gốc",
            "Original unit code",
            "Mã xã trước 2025 như người gửi ghi, khi đã được chuyển sang mã mới.",
            "The pre-2025 code as submitted, when it was mapped to the new one.",
            None,
            pattern(COMMUNE_CODE, false),
        ),
        column(
            "lat",
            "Vĩ độ",
            "Latitude",
            "Vĩ độ WGS 84 nơi xảy ra sự việc.",
            "WGS 84 latitude of the place concerned.",
            None,
            Constraints { minimum: Some(-90.0), maximum: Some(90.0), ..Constraints::default() },
        ),
        column(
            "lon",
            "Kinh độ",
            "Longitude",
            "Kinh độ WGS 84 nơi xảy ra sự việc.",
            "WGS 84 longitude of the place concerned.",
            None,
            Constraints { minimum: Some(-180.0), maximum: Some(180.0), ..Constraints::default() },
        ),
        column(
            "contact_name",
            "Họ tên người gửi",
            "Contact name",
            "Dữ liệu cá nhân: chỉ rõ khi vai trò được phép, nếu không thì viết tắt.",
            "Personal data: in full only where the role allows it, initials otherwise.",
            None,
            Constraints::default(),
        ),
        column(
            "contact_phone",
            "Điện thoại",
            "Contact phone",
            "Dữ liệu cá nhân: che trừ 3 số cuối khi vai trò không được phép.",
            "Personal data: all but the last 3 digits masked where the role does not allow it.",
            None,
            Constraints::default(),
        ),
        column(
            "contact_email",
            "Thư điện tử",
            "Contact email",
            "Dữ liệu cá nhân: che phần trước @ khi vai trò không được phép.",
            "Personal data: the part before @ masked where the role does not allow it.",
            None,
            Constraints::default(),
        ),
        column(
            "schema_version",
            "Phiên bản lược đồ",
            "Schema version",
            "Phiên bản lược đồ của bản ghi.",
            "Schema version of the record.",
            None,
            Constraints { required: true, minimum: Some(1.0), ..Constraints::default() },
        ),
        column(
            "topic",
            "Chủ đề",
            "Topic",
            "Mã chủ đề theo bảng phân loại (topics.toml); trống nếu chưa phân loại.",
            "Topic code of the taxonomy (topics.toml); empty when unclassified.",
            None,
            pattern(TOPIC_CODE, false),
        ),
        column(
            "topic_confidence",
            "Độ tin cậy chủ đề",
            "Topic confidence",
            "Độ tin cậy của việc gán chủ đề, từ 0 đến 1.",
            "Confidence of the topic assignment, 0 to 1.",
            None,
            Constraints { minimum: Some(0.0), maximum: Some(1.0), ..Constraints::default() },
        ),
    ];
    DatasetSpec {
        name: "petitions",
        title_vi: "Phản ánh, kiến nghị",
        title_en: "Petitions",
        description_vi: "Phản ánh, kiến nghị của người dân đã được tiếp nhận, mỗi dòng một kiến nghị.",
        description_en: "Citizens' petitions and feedback as received, one row per petition.",
        schema: petition::arrow_schema(),
        columns,
        primary_key: vec!["id"],
        foreign_keys: vec![
            ForeignKey { fields: vec!["province_code"], resource: "provinces", reference_fields: vec!["code"] },
            ForeignKey { fields: vec!["commune_code"], resource: "communes", reference_fields: vec!["code"] },
        ],
    }
}

/// Columns the handling tables copy from the petition they are about.
fn petition_copy_columns() -> Vec<ColumnDoc> {
    vec![
        column(
            "tracking_code",
            "Mã tra cứu",
            "Tracking code",
            "Mã tra cứu của kiến nghị (chép từ bảng petitions).",
            "The petition's tracking code (copied from petitions).",
            None,
            pattern(TRACKING_CODE, true),
        ),
        column(
            "received_at",
            "Thời điểm tiếp nhận",
            "Received at",
            "Thời điểm hệ thống tiếp nhận kiến nghị (UTC); thời hạn thụ lý tính từ ngày này.",
            "When the system received the petition (UTC); the acceptance time limit counts from that day.",
            None,
            required(),
        ),
        column(
            "province_code",
            "Mã tỉnh",
            "Province code",
            "Tỉnh, thành phố nơi xảy ra sự việc (danh mục 2025), như trong petitions.",
            "Province of the place concerned (2025 list), as in petitions.",
            None,
            pattern(PROVINCE_CODE, true),
        ),
        column(
            "commune_code",
            "Mã xã",
            "Commune code",
            "Xã, phường, đặc khu nơi xảy ra sự việc (danh mục 2025), như trong petitions.",
            "Commune of the place concerned (2025 list), as in petitions.",
            None,
            pattern(COMMUNE_CODE, true),
        ),
        column(
            "topic",
            "Chủ đề",
            "Topic",
            "Mã chủ đề của kiến nghị; quy tắc phân cấp theo chủ đề quyết định đơn vị tiếp nhận ban đầu.",
            "The petition's topic code; the routing rules by topic decide which unit first handles it.",
            None,
            pattern(TOPIC_CODE, false),
        ),
        column(
            "title",
            "Tiêu đề",
            "Title",
            "Tiêu đề kiến nghị; số điện thoại, số định danh được che khi vai trò không được phép.",
            "Petition title; phone and ID numbers masked where the role does not allow them.",
            None,
            Constraints { required: true, max_length: Some(MAX_TITLE_CHARS), ..Constraints::default() },
        ),
    ]
}

fn state_enum() -> Vec<String> {
    State::ALL.iter().map(|s| s.as_str().to_owned()).collect()
}

fn petition_id_column(unique: bool) -> ColumnDoc {
    column(
        "petition_id",
        "Mã kiến nghị",
        "Petition id",
        "Mã định danh (UUID) của kiến nghị trong bảng petitions.",
        "Identifier (UUID) of the petition in petitions.",
        Some("uuid"),
        Constraints { required: true, unique, ..Constraints::default() },
    )
}

fn handling_foreign_keys() -> Vec<ForeignKey> {
    vec![
        ForeignKey { fields: vec!["petition_id"], resource: "petitions", reference_fields: vec!["id"] },
        ForeignKey { fields: vec!["province_code"], resource: "provinces", reference_fields: vec!["code"] },
        ForeignKey { fields: vec!["commune_code"], resource: "communes", reference_fields: vec!["code"] },
    ]
}

fn petition_events() -> DatasetSpec {
    let actions = Action::ALL.iter().map(|a| a.as_str().to_owned()).collect();
    let roles = ["officer", "leader", "admin", "citizen", "system"].iter().map(|r| (*r).to_owned()).collect();
    let mut columns = vec![
        column(
            "event_id",
            "Mã sự kiện",
            "Event id",
            "UUID phiên bản 7 của sự kiện; thông báo và webhook dùng làm mã chống trùng.",
            "UUID version 7 of the event; notifications and webhooks deduplicate on it.",
            Some("uuid"),
            Constraints { required: true, unique: true, ..Constraints::default() },
        ),
        petition_id_column(false),
        column(
            "at",
            "Thời điểm",
            "At",
            "Thời điểm thực hiện thao tác (UTC).",
            "When the action was taken (UTC).",
            None,
            required(),
        ),
        column(
            "action",
            "Thao tác",
            "Action",
            "Thao tác xử lý: thụ lý, không thụ lý, giao, bắt đầu xử lý, trả lời, kết thúc, mở lại, chuyển, chuyển cấp trên, gia hạn, đánh giá.",
            "The handling action: accept, decline, assign, start, answer, close, reopen, transfer, escalate, extend, rate.",
            None,
            Constraints { required: true, enumeration: Some(actions), ..Constraints::default() },
        ),
        column(
            "actor_id",
            "Người thực hiện",
            "Actor id",
            "Mã token của cán bộ, hoặc citizen (người dân, bằng mã tra cứu và mã bí mật), hoặc system.",
            "The staff member's token id, or citizen (the petitioner, by tracking code and secret), or system.",
            None,
            required(),
        ),
        column(
            "actor_role",
            "Vai trò",
            "Actor role",
            "Vai trò của người thực hiện.",
            "Role of the actor.",
            None,
            Constraints { required: true, enumeration: Some(roles), ..Constraints::default() },
        ),
        column(
            "actor_unit",
            "Đơn vị người thực hiện",
            "Actor unit",
            "Đơn vị của cán bộ (00, mã tỉnh hoặc mã xã); trống khi người dân thực hiện.",
            "The staff member's unit (00, a province or a commune); empty for the citizen.",
            None,
            pattern(UNIT_CODE, false),
        ),
        column(
            "from_state",
            "Trạng thái trước",
            "From state",
            "Trạng thái của kiến nghị trước thao tác.",
            "The petition's state before the action.",
            None,
            Constraints { required: true, enumeration: Some(state_enum()), ..Constraints::default() },
        ),
        column(
            "to_state",
            "Trạng thái sau",
            "To state",
            "Trạng thái của kiến nghị sau thao tác.",
            "The petition's state after the action.",
            None,
            Constraints { required: true, enumeration: Some(state_enum()), ..Constraints::default() },
        ),
        column(
            "unit",
            "Đơn vị xử lý",
            "Handling unit",
            "Đơn vị xử lý kiến nghị sau thao tác: 00, tỉnh, xã hoặc thôn, tổ dân phố (ccccc-nnn).",
            "The unit handling the petition after the action: 00, a province, a commune or a village (ccccc-nnn).",
            None,
            pattern(UNIT_CODE, true),
        ),
        column(
            "note",
            "Ghi chú, lý do",
            "Note",
            "Lý do (không thụ lý, chuyển, chuyển cấp trên, gia hạn, mở lại) hoặc ghi chú; số điện thoại, số định danh được che khi vai trò không được phép.",
            "The reason (decline, transfer, escalate, extend, reopen) or a note; phone and ID numbers masked where the role does not allow them.",
            None,
            Constraints::default(),
        ),
        column(
            "answer",
            "Nội dung trả lời",
            "Answer",
            "Nội dung trả lời người dân (thao tác trả lời); số điện thoại, số định danh được che khi vai trò không được phép.",
            "The answer to the citizen (answer action); phone and ID numbers masked where the role does not allow them.",
            None,
            Constraints::default(),
        ),
        column(
            "days",
            "Số ngày gia hạn",
            "Days",
            "Số ngày làm việc được gia hạn (thao tác gia hạn).",
            "Working days added (extend action).",
            None,
            Constraints { minimum: Some(1.0), ..Constraints::default() },
        ),
        column(
            "rating",
            "Đánh giá",
            "Rating",
            "Mức hài lòng người dân chấm, từ 1 đến 5 (thao tác đánh giá).",
            "The citizen's satisfaction, 1 to 5 (rate action).",
            None,
            Constraints { minimum: Some(1.0), maximum: Some(5.0), ..Constraints::default() },
        ),
        column(
            "log_partition",
            "Phân vùng nhật ký",
            "Log partition",
            "Phân vùng của voxpop.events mà sự kiện được đọc từ đó.",
            "Partition of voxpop.events the event was read from.",
            None,
            Constraints { required: true, minimum: Some(0.0), ..Constraints::default() },
        ),
        column(
            "log_offset",
            "Vị trí nhật ký",
            "Log offset",
            "Vị trí của sự kiện trong phân vùng; thứ tự các sự kiện của một kiến nghị.",
            "Offset of the event in its partition; orders the events of one petition.",
            None,
            Constraints { required: true, minimum: Some(0.0), ..Constraints::default() },
        ),
    ];
    columns.extend(petition_copy_columns());
    DatasetSpec {
        name: workflow::EVENTS_TABLE,
        title_vi: "Quá trình xử lý kiến nghị",
        title_en: "Petition handling events",
        description_vi: "Mỗi dòng một thao tác xử lý kiến nghị (thụ lý, giao, trả lời, đánh giá...), chỉ ghi thêm, không sửa.",
        description_en: "One row per handling action on a petition (accept, assign, answer, rate...); append-only.",
        schema: workflow::rows::events_schema(),
        columns,
        primary_key: vec!["event_id"],
        foreign_keys: handling_foreign_keys(),
    }
}

fn petition_status() -> DatasetSpec {
    let optional_time = |name, title_vi, title_en, description_vi, description_en| {
        column(name, title_vi, title_en, description_vi, description_en, None, Constraints::default())
    };
    let mut columns = vec![
        petition_id_column(true),
        column(
            "state",
            "Trạng thái",
            "State",
            "Trạng thái hiện tại: received (mới tiếp nhận), accepted (đã thụ lý), declined (không thụ lý), assigned (đã giao), in_progress (đang xử lý), answered (đã trả lời), closed (đã kết thúc), reopened (mở lại).",
            "Current state: received, accepted, declined, assigned, in_progress, answered, closed, reopened.",
            None,
            Constraints { required: true, enumeration: Some(state_enum()), ..Constraints::default() },
        ),
        column(
            "unit",
            "Đơn vị xử lý",
            "Handling unit",
            "Đơn vị phải xử lý lúc này: 00, tỉnh, xã hoặc thôn, tổ dân phố (ccccc-nnn).",
            "The unit that must act now: 00, a province, a commune or a village (ccccc-nnn).",
            None,
            pattern(UNIT_CODE, true),
        ),
        column(
            "stage_started_at",
            "Bắt đầu giai đoạn",
            "Stage started at",
            "Thời điểm bắt đầu giai đoạn hiện tại (tiếp nhận, thụ lý, mở lại, chuyển); ngày này không tính vào thời hạn.",
            "When the current stage began (receipt, acceptance, reopening, transfer); that day does not count towards the limit.",
            None,
            required(),
        ),
        optional_time(
            "due_at",
            "Hạn xử lý",
            "Due at",
            "Hết thời hạn của giai đoạn hiện tại (23:59:59 giờ Việt Nam của ngày làm việc cuối cùng, lưu theo UTC); trống khi không còn giai đoạn nào chạy.",
            "End of the current stage's time limit (23:59:59 Vietnam time of its last working day, stored in UTC); empty when no stage runs.",
        ),
        column(
            "extension_days",
            "Số ngày đã gia hạn",
            "Extension days",
            "Tổng số ngày làm việc đã gia hạn cho giai đoạn trả lời.",
            "Working days added to the answer stage in all.",
            None,
            Constraints { required: true, minimum: Some(0.0), ..Constraints::default() },
        ),
        column(
            "answer",
            "Nội dung trả lời",
            "Answer",
            "Nội dung trả lời gần nhất; số điện thoại, số định danh được che khi vai trò không được phép.",
            "The latest answer; phone and ID numbers masked where the role does not allow them.",
            None,
            Constraints::default(),
        ),
        optional_time(
            "answered_at",
            "Thời điểm trả lời",
            "Answered at",
            "Thời điểm trả lời gần nhất (UTC).",
            "When the latest answer was given (UTC).",
        ),
        column(
            "answered_on_time",
            "Trả lời đúng hạn",
            "Answered on time",
            "Lần trả lời gần nhất có trong thời hạn (kể cả gia hạn) hay không.",
            "Whether the latest answer came within its time limit (extensions included).",
            None,
            Constraints::default(),
        ),
        optional_time(
            "closed_at",
            "Thời điểm kết thúc",
            "Closed at",
            "Thời điểm kết thúc hoặc không thụ lý (UTC); trống khi được mở lại.",
            "When it was closed or declined (UTC); empty after a reopening.",
        ),
        column(
            "rating",
            "Đánh giá",
            "Rating",
            "Mức hài lòng gần nhất người dân chấm, từ 1 đến 5.",
            "The citizen's latest satisfaction rating, 1 to 5.",
            None,
            Constraints { minimum: Some(1.0), maximum: Some(5.0), ..Constraints::default() },
        ),
        column(
            "reopen_count",
            "Số lần mở lại",
            "Reopen count",
            "Số lần người dân mở lại kiến nghị sau khi được trả lời.",
            "How many times the citizen reopened the petition after an answer.",
            None,
            Constraints { required: true, minimum: Some(0.0), ..Constraints::default() },
        ),
        column(
            "updated_at",
            "Cập nhật lúc",
            "Updated at",
            "Thời điểm của thao tác gần nhất (UTC).",
            "When the latest action was taken (UTC).",
            None,
            required(),
        ),
        column(
            "events",
            "Số thao tác",
            "Events",
            "Số sự kiện xử lý đã áp dụng cho kiến nghị.",
            "Number of handling events applied to the petition.",
            None,
            Constraints { required: true, minimum: Some(1.0), ..Constraints::default() },
        ),
    ];
    columns.extend(petition_copy_columns());
    DatasetSpec {
        name: workflow::STATUS_TABLE,
        title_vi: "Tình trạng xử lý kiến nghị",
        title_en: "Petition handling status",
        description_vi: "Mỗi dòng một kiến nghị đã có thao tác xử lý: trạng thái hiện tại, đơn vị xử lý, hạn, kết quả; suy ra từ petition_events.",
        description_en: "One row per petition that has handling events: current state, handling unit, deadline, outcome; derived from petition_events.",
        schema: workflow::rows::status_schema(),
        columns,
        primary_key: vec!["petition_id"],
        foreign_keys: handling_foreign_keys(),
    }
}

fn weekly_reports() -> DatasetSpec {
    let levels = Level::ALL.iter().map(|l| l.as_str().to_owned()).collect();
    let sources = Source::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    let columns = vec![
        column(
            reports::PARTITION_COLUMN,
            "Tuần báo cáo",
            "Week",
            "Tuần ISO được báo cáo, ví dụ 2025-W38.",
            "ISO week reported on, e.g. 2025-W38.",
            None,
            pattern("^[0-9]{4}-W[0-9]{2}$", true),
        ),
        column(
            "unit_code",
            "Mã đơn vị",
            "Unit code",
            "Đơn vị báo cáo: 00 (Trung ương), mã tỉnh, mã xã 2025 hoặc thôn, tổ dân phố (ccccc-nnn).",
            "Reporting unit: 00 (central), a province, a 2025 commune or a village (ccccc-nnn).",
            None,
            pattern(UNIT_CODE, true),
        ),
        column(
            "level",
            "Cấp",
            "Level",
            "Cấp của đơn vị báo cáo.",
            "Level of the reporting unit.",
            None,
            Constraints { required: true, enumeration: Some(levels), ..Constraints::default() },
        ),
        column(
            "indicator",
            "Chỉ tiêu",
            "Indicator",
            "Mã chỉ tiêu trong danh mục (indicators.toml).",
            "Indicator code of the catalogue (indicators.toml).",
            None,
            pattern(TOPIC_CODE, true),
        ),
        column(
            "value_number",
            "Giá trị số",
            "Number value",
            "Giá trị của chỉ tiêu dạng số (số lượng, số tiền, tỷ lệ); trống với chỉ tiêu loại khác.",
            "The value of a numeric indicator (count, amount, percentage); empty for other kinds.",
            None,
            Constraints::default(),
        ),
        column(
            "value_bool",
            "Giá trị có/không",
            "Yes/no value",
            "Giá trị của chỉ tiêu có/không; trống với chỉ tiêu loại khác.",
            "The value of a yes/no indicator; empty for other kinds.",
            None,
            Constraints::default(),
        ),
        column(
            "value_text",
            "Giá trị văn bản",
            "Text value",
            "Giá trị của chỉ tiêu dạng văn bản; trống với chỉ tiêu loại khác.",
            "The value of a text indicator; empty for other kinds.",
            None,
            Constraints { max_length: Some(reports::MAX_TEXT_CHARS), ..Constraints::default() },
        ),
        column(
            "submitted_at",
            "Thời điểm gửi",
            "Submitted at",
            "Thời điểm hệ thống nhận giá trị (UTC); với cùng đơn vị, tuần và chỉ tiêu, giá trị gửi sau cùng là giá trị hiện hành.",
            "When the value was received (UTC); for one unit, week and indicator the latest one is current.",
            None,
            required(),
        ),
        column(
            "submitted_by",
            "Người gửi",
            "Submitted by",
            "Mã token đã gửi giá trị, nếu biết.",
            "The token that sent the value, when known.",
            None,
            Constraints::default(),
        ),
        column(
            "source",
            "Nguồn",
            "Source",
            "Cách gửi: api (biểu mẫu, ứng dụng), xlsx hoặc csv (tải tệp lên).",
            "How it was sent: api (form, app), xlsx or csv (file upload).",
            None,
            Constraints { required: true, enumeration: Some(sources), ..Constraints::default() },
        ),
    ];
    DatasetSpec {
        name: reports::TABLE_NAME,
        title_vi: "Báo cáo tuần của các đơn vị",
        title_en: "Weekly reports of units",
        description_vi: "Mỗi dòng một chỉ tiêu của một đơn vị trong một tuần; giá trị sửa là dòng mới, lịch sử được giữ.",
        description_en: "One row per indicator of one unit for one week; a correction is a new row, history kept.",
        schema: reports::arrow_schema(),
        columns,
        primary_key: vec![reports::PARTITION_COLUMN, "unit_code", "indicator", "submitted_at"],
        foreign_keys: Vec::new(),
    }
}

fn provinces() -> DatasetSpec {
    let mut fields = vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("commune_count", DataType::UInt32, false),
    ];
    fields.extend(date_fields());
    let mut columns = vec![
        column(
            "code",
            "Mã tỉnh",
            "Code",
            "Mã tỉnh, thành phố.",
            "Province code.",
            None,
            Constraints { required: true, unique: true, pattern: Some(PROVINCE_CODE), ..Constraints::default() },
        ),
        column("name", "Tên", "Name", "Tên tỉnh, thành phố.", "Province name.", None, required()),
        column(
            "commune_count",
            "Số đơn vị cấp xã",
            "Communes",
            "Số xã, phường, đặc khu trực thuộc.",
            "Number of communes in the province.",
            None,
            Constraints { required: true, minimum: Some(1.0), ..Constraints::default() },
        ),
    ];
    columns.extend(validity_columns());
    DatasetSpec {
        name: "provinces",
        title_vi: "Danh mục tỉnh, thành phố (2025)",
        title_en: "Provinces (2025 list)",
        description_vi: "34 tỉnh, thành phố có hiệu lực từ ngày 01/7/2025.",
        description_en: "The 34 provinces in force since 2025-07-01.",
        schema: Arc::new(Schema::new(fields)),
        columns,
        primary_key: vec!["code"],
        foreign_keys: Vec::new(),
    }
}

fn communes() -> DatasetSpec {
    let mut fields = vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("province_code", DataType::Utf8, false),
        Field::new("lat", DataType::Float64, true),
        Field::new("lon", DataType::Float64, true),
        Field::new("area_km2", DataType::Float64, true),
    ];
    fields.extend(date_fields());
    let mut columns = vec![
        column(
            "code",
            "Mã xã",
            "Code",
            "Mã xã, phường, đặc khu.",
            "Commune code.",
            None,
            Constraints { required: true, unique: true, pattern: Some(COMMUNE_CODE), ..Constraints::default() },
        ),
        column("name", "Tên", "Name", "Tên xã, phường, đặc khu.", "Commune name.", None, required()),
        column(
            "kind",
            "Loại",
            "Kind",
            "Xã, Phường hoặc Đặc khu.",
            "Xã (rural), Phường (urban ward) or Đặc khu (special zone).",
            None,
            Constraints {
                required: true,
                enumeration: Some(vec!["Xã".into(), "Phường".into(), "Đặc khu".into()]),
                ..Constraints::default()
            },
        ),
        column(
            "province_code",
            "Mã tỉnh",
            "Province code",
            "Tỉnh, thành phố trực thuộc.",
            "Province it belongs to.",
            None,
            pattern(PROVINCE_CODE, true),
        ),
        column(
            "lat",
            "Vĩ độ",
            "Latitude",
            "Vĩ độ trung tâm (WGS 84).",
            "Latitude of the centre (WGS 84).",
            None,
            Constraints { minimum: Some(-90.0), maximum: Some(90.0), ..Constraints::default() },
        ),
        column(
            "lon",
            "Kinh độ",
            "Longitude",
            "Kinh độ trung tâm (WGS 84).",
            "Longitude of the centre (WGS 84).",
            None,
            Constraints { minimum: Some(-180.0), maximum: Some(180.0), ..Constraints::default() },
        ),
        column(
            "area_km2",
            "Diện tích (km²)",
            "Area (km²)",
            "Diện tích tự nhiên.",
            "Land area.",
            None,
            Constraints { minimum: Some(0.0), ..Constraints::default() },
        ),
    ];
    columns.extend(validity_columns());
    DatasetSpec {
        name: "communes",
        title_vi: "Danh mục xã, phường, đặc khu (2025)",
        title_en: "Communes (2025 list)",
        description_vi: "3.321 đơn vị hành chính cấp xã có hiệu lực từ ngày 01/7/2025.",
        description_en: "The 3,321 communes in force since 2025-07-01.",
        schema: Arc::new(Schema::new(fields)),
        columns,
        primary_key: vec!["code"],
        foreign_keys: vec![ForeignKey {
            fields: vec!["province_code"],
            resource: "provinces",
            reference_fields: vec!["code"],
        }],
    }
}

fn communes_pre2025() -> DatasetSpec {
    let mut fields = vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("district_code", DataType::Utf8, false),
        Field::new("district_name", DataType::Utf8, false),
        Field::new("province_code", DataType::Utf8, false),
        Field::new("province_name", DataType::Utf8, false),
    ];
    fields.extend(date_fields());
    let mut columns = vec![
        column(
            "code",
            "Mã xã cũ",
            "Code",
            "Mã xã, phường, thị trấn trước ngày 01/7/2025.",
            "Commune code before 2025-07-01.",
            None,
            Constraints { required: true, unique: true, pattern: Some(COMMUNE_CODE), ..Constraints::default() },
        ),
        column("name", "Tên", "Name", "Tên đơn vị cấp xã cũ.", "Name of the former commune.", None, required()),
        column("kind", "Loại", "Kind", "Xã, Phường hoặc Thị trấn.", "Xã, Phường or Thị trấn.", None, required()),
        column(
            "district_code",
            "Mã huyện cũ",
            "District code",
            "Mã cấp huyện cũ (cấp huyện đã bỏ từ 2025).",
            "Former district code (the district level was abolished in 2025).",
            None,
            pattern("^[0-9]{3}$", true),
        ),
        column(
            "district_name",
            "Tên huyện cũ",
            "District name",
            "Tên cấp huyện cũ.",
            "Former district name.",
            None,
            required(),
        ),
        column(
            "province_code",
            "Mã tỉnh cũ",
            "Province code",
            "Mã tỉnh trước 2025 (63 tỉnh).",
            "Province code before 2025 (63 provinces).",
            None,
            pattern(PROVINCE_CODE, true),
        ),
        column(
            "province_name",
            "Tên tỉnh cũ",
            "Province name",
            "Tên tỉnh trước 2025.",
            "Province name before 2025.",
            None,
            required(),
        ),
    ];
    columns.extend(validity_columns());
    DatasetSpec {
        name: "communes_pre2025",
        title_vi: "Danh mục xã trước 01/7/2025",
        title_en: "Communes before 2025-07-01",
        description_vi: "Đơn vị cấp xã trước sắp xếp năm 2025; vẫn dùng được qua bảng chuyển đổi.",
        description_en: "Communes before the 2025 reform; still resolvable through the crosswalk.",
        schema: Arc::new(Schema::new(fields)),
        columns,
        primary_key: vec!["code"],
        foreign_keys: Vec::new(),
    }
}

fn crosswalk() -> DatasetSpec {
    let fields = vec![
        Field::new("old_code", DataType::Utf8, false),
        Field::new("new_code", DataType::Utf8, false),
        Field::new("split", DataType::Boolean, false),
        Field::new("default_target", DataType::Boolean, false),
    ];
    let columns = vec![
        column(
            "old_code",
            "Mã xã cũ",
            "Old code",
            "Mã xã trước 2025.",
            "Commune code before 2025.",
            None,
            pattern(COMMUNE_CODE, true),
        ),
        column(
            "new_code",
            "Mã xã mới",
            "New code",
            "Mã xã 2025 nhận (một phần) địa bàn.",
            "2025 commune that took (part of) the area.",
            None,
            pattern(COMMUNE_CODE, true),
        ),
        column(
            "split",
            "Bị chia tách",
            "Split",
            "Xã cũ được chia cho nhiều xã mới.",
            "The old commune was split across several new ones.",
            None,
            required(),
        ),
        column(
            "default_target",
            "Đích mặc định",
            "Default target",
            "Xã mới mà mã cũ được chuyển tới khi không rõ địa chỉ chi tiết.",
            "The new commune an old code maps to when nothing more precise is known.",
            None,
            required(),
        ),
    ];
    DatasetSpec {
        name: "unit_crosswalk_2025",
        title_vi: "Bảng chuyển đổi mã xã cũ sang mã xã 2025",
        title_en: "Crosswalk from pre-2025 to 2025 commune codes",
        description_vi: "Mỗi dòng nối một xã cũ với một xã mới nhận địa bàn của nó.",
        description_en: "Each row links a former commune to a 2025 commune that took its area.",
        schema: Arc::new(Schema::new(fields)),
        columns,
        primary_key: vec!["old_code", "new_code"],
        foreign_keys: vec![
            ForeignKey { fields: vec!["old_code"], resource: "communes_pre2025", reference_fields: vec!["code"] },
            ForeignKey { fields: vec!["new_code"], resource: "communes", reference_fields: vec!["code"] },
        ],
    }
}

/// Frictionless type of an Arrow type.
fn frictionless_type(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "integer",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "integer",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "number",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Millisecond | TimeUnit::Second, _) => "datetime",
        _ => "any",
    }
}

impl DatasetSpec {
    /// The description of column `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDoc> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The Frictionless Table Schema (https://specs.frictionlessdata.io/table-schema/) of the
    /// dataset. Titles and descriptions are Vietnamese; `title_en`/`description_en` carry the
    /// English ones (custom properties, which the specification allows).
    pub fn table_schema(&self) -> Value {
        let fields: Vec<Value> = self
            .schema
            .fields()
            .iter()
            .map(|field| {
                let mut value = json!({"name": field.name(), "type": frictionless_type(field.data_type())});
                if let Some(doc) = self.column(field.name()) {
                    value["title"] = json!(doc.title_vi);
                    value["description"] = json!(doc.description_vi);
                    value["title_en"] = json!(doc.title_en);
                    value["description_en"] = json!(doc.description_en);
                    if let Some(format) = doc.format {
                        value["format"] = json!(format);
                    }
                    let c = &doc.constraints;
                    let mut constraints = serde_json::Map::new();
                    if c.required {
                        constraints.insert("required".into(), json!(true));
                    }
                    if c.unique {
                        constraints.insert("unique".into(), json!(true));
                    }
                    if let Some(pattern) = c.pattern {
                        constraints.insert("pattern".into(), json!(pattern));
                    }
                    if let Some(values) = &c.enumeration {
                        constraints.insert("enum".into(), json!(values));
                    }
                    if let Some(min) = c.minimum {
                        constraints.insert("minimum".into(), json!(min));
                    }
                    if let Some(max) = c.maximum {
                        constraints.insert("maximum".into(), json!(max));
                    }
                    if let Some(max) = c.max_length {
                        constraints.insert("maxLength".into(), json!(max));
                    }
                    if !constraints.is_empty() {
                        value["constraints"] = Value::Object(constraints);
                    }
                }
                value
            })
            .collect();
        let mut schema = json!({"fields": fields, "missingValues": [""]});
        if !self.primary_key.is_empty() {
            schema["primaryKey"] = json!(self.primary_key);
        }
        if !self.foreign_keys.is_empty() {
            schema["foreignKeys"] = json!(
                self.foreign_keys
                    .iter()
                    .map(|fk| json!({"fields": fk.fields, "reference": {"resource": fk.resource, "fields": fk.reference_fields}}))
                    .collect::<Vec<_>>()
            );
        }
        schema
    }

    /// Whether the dataset is a Delta table under the lake directory ([`LAKE_DATASETS`]).
    pub fn in_lake(&self) -> bool {
        LAKE_DATASETS.contains(&self.name)
    }

    /// The rows of a reference dataset (a code list); `None` for the tables of the lake.
    pub fn reference_batch(&self, units: &Units) -> Option<RecordBatch> {
        let day = |date: NaiveDate| (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32;
        let strings = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let floats = |values: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(values)) };
        // Each row's own validity (a unit retired by an update of the lists has its `valid_to`).
        let validity = |rows: Vec<(Option<NaiveDate>, Option<NaiveDate>)>| -> Vec<ArrayRef> {
            let (from, to): (Vec<_>, Vec<_>) = rows.into_iter().map(|(f, t)| (f.map(day), t.map(day))).unzip();
            vec![Arc::new(Date32Array::from(from)), Arc::new(Date32Array::from(to))]
        };
        let columns: Vec<ArrayRef> = match self.name {
            "provinces" => {
                let p = units.provinces();
                let mut columns = vec![
                    strings(p.iter().map(|p| p.code.as_str()).collect()),
                    strings(p.iter().map(|p| p.name.as_str()).collect()),
                    Arc::new(UInt32Array::from(p.iter().map(|p| p.commune_count).collect::<Vec<_>>())) as ArrayRef,
                ];
                columns.extend(validity(p.iter().map(|p| (p.valid_from, p.valid_to)).collect()));
                columns
            }
            "communes" => {
                let c = units.communes();
                let mut columns = vec![
                    strings(c.iter().map(|c| c.code.as_str()).collect()),
                    strings(c.iter().map(|c| c.name.as_str()).collect()),
                    strings(c.iter().map(|c| c.kind.as_str()).collect()),
                    strings(c.iter().map(|c| c.province_code.as_str()).collect()),
                    floats(c.iter().map(|c| c.lat).collect()),
                    floats(c.iter().map(|c| c.lon).collect()),
                    floats(c.iter().map(|c| c.area_km2).collect()),
                ];
                columns.extend(validity(c.iter().map(|c| (c.valid_from, c.valid_to)).collect()));
                columns
            }
            "communes_pre2025" => {
                let mut c: Vec<_> = units.legacy_communes().collect();
                c.sort_by(|a, b| a.code.cmp(&b.code));
                let mut columns = vec![
                    strings(c.iter().map(|c| c.code.as_str()).collect()),
                    strings(c.iter().map(|c| c.name.as_str()).collect()),
                    strings(c.iter().map(|c| c.kind.as_str()).collect()),
                    strings(c.iter().map(|c| c.district_code.as_str()).collect()),
                    strings(c.iter().map(|c| c.district_name.as_str()).collect()),
                    strings(c.iter().map(|c| c.province_code.as_str()).collect()),
                    strings(c.iter().map(|c| c.province_name.as_str()).collect()),
                ];
                columns.extend(validity(c.iter().map(|c| (c.valid_from, c.valid_to)).collect()));
                columns
            }
            "unit_crosswalk_2025" => {
                let x = units.crosswalk();
                vec![
                    strings(x.iter().map(|x| x.old_code.as_str()).collect()),
                    strings(x.iter().map(|x| x.new_code.as_str()).collect()),
                    Arc::new(BooleanArray::from(x.iter().map(|x| x.split).collect::<Vec<_>>())),
                    Arc::new(BooleanArray::from(x.iter().map(|x| x.default_target).collect::<Vec<_>>())),
                ]
            }
            _ => return None,
        };
        Some(RecordBatch::try_new(self.schema.clone(), columns).expect("columns match the dataset schema"))
    }
}

/// The reference page of every dataset (docs/SCHEMA.md), generated from these definitions.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Lược đồ dữ liệu quốc gia của voxpop / voxpop's national data schema\n\n\
         Generated by `voxpop schema --markdown` from the code (`schema/src/datasets.rs`); do not edit by hand.\n\
         Exports carry the same definitions as Frictionless Table Schemas in `datapackage.json`.\n",
    );
    for spec in datasets() {
        out.push_str(&format!(
            "\n## `{}` — {} / {}\n\n{}\n\n{}\n\n",
            spec.name, spec.title_vi, spec.title_en, spec.description_vi, spec.description_en
        ));
        out.push_str(&format!("Primary key: `{}`", spec.primary_key.join("`, `")));
        for fk in &spec.foreign_keys {
            out.push_str(&format!(
                "; `{}` → `{}`.`{}`",
                fk.fields.join("`, `"),
                fk.resource,
                fk.reference_fields.join("`, `")
            ));
        }
        out.push_str("\n\n| column | type | constraints | tiếng Việt | English |\n|---|---|---|---|---|\n");
        for field in spec.schema.fields() {
            let doc = spec.column(field.name());
            let constraints = doc.map(|d| constraint_text(&d.constraints)).unwrap_or_default();
            let (vi, en) = doc.map_or((String::new(), String::new()), |d| {
                (
                    format!("**{}**: {}", d.title_vi, d.description_vi),
                    format!("**{}**: {}", d.title_en, d.description_en),
                )
            });
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                field.name(),
                frictionless_type(field.data_type()),
                constraints,
                vi.replace('|', "\\|"),
                en.replace('|', "\\|")
            ));
        }
    }
    out
}

fn constraint_text(c: &Constraints) -> String {
    let mut parts = Vec::new();
    if c.required {
        parts.push("required".to_owned());
    }
    if c.unique {
        parts.push("unique".to_owned());
    }
    if let Some(p) = c.pattern {
        parts.push(format!("pattern `{}`", p.replace('|', "\\|")));
    }
    if let Some(values) = &c.enumeration {
        parts.push(format!("one of {}", values.join(", ")));
    }
    if let Some(min) = c.minimum {
        parts.push(format!("≥ {min}"));
    }
    if let Some(max) = c.maximum {
        parts.push(format!("≤ {max}"));
    }
    if let Some(max) = c.max_length {
        parts.push(format!("≤ {max} chars"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_of_every_dataset_is_documented() {
        for spec in datasets() {
            for field in spec.schema.fields() {
                let doc = spec
                    .column(field.name())
                    .unwrap_or_else(|| panic!("{}.{} has no description", spec.name, field.name()));
                assert!(!doc.description_vi.is_empty() && !doc.description_en.is_empty());
            }
            assert_eq!(
                spec.columns.len(),
                spec.schema.fields().len(),
                "{}: descriptions of missing columns",
                spec.name
            );
            for key in &spec.primary_key {
                assert!(spec.schema.field_with_name(key).is_ok(), "{}: key {key}", spec.name);
            }
            for fk in &spec.foreign_keys {
                let target = dataset(fk.resource).unwrap_or_else(|| panic!("{} references {}", spec.name, fk.resource));
                for field in &fk.reference_fields {
                    assert!(target.schema.field_with_name(field).is_ok());
                }
            }
        }
    }

    #[test]
    fn reference_datasets_have_their_rows() {
        let units = Units::embedded();
        let rows = |name: &str| dataset(name).unwrap().reference_batch(units).unwrap().num_rows();
        assert_eq!(rows("provinces"), 34);
        assert_eq!(rows("communes"), 3321);
        assert!(rows("communes_pre2025") > 10_000);
        assert!(rows("unit_crosswalk_2025") >= 10_000);
        for name in LAKE_DATASETS {
            assert!(dataset(name).unwrap().in_lake());
            assert!(dataset(name).unwrap().reference_batch(units).is_none(), "{name}");
        }
    }

    #[test]
    fn reference_batches_carry_each_units_own_validity() {
        use arrow::array::Array;
        let mut communes = Units::compiled_in().communes().to_vec();
        let retired = NaiveDate::from_ymd_opt(2026, 3, 31);
        communes[0].valid_to = retired;
        let units = Units::compiled_in();
        let legacy: Vec<_> = units.legacy_communes().cloned().collect();
        let units =
            Units::from_lists(units.provinces().to_vec(), communes, legacy, units.crosswalk().to_vec()).unwrap();
        let batch = dataset("communes").unwrap().reference_batch(&units).unwrap();
        let valid_to = batch.column_by_name("valid_to").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
        let day = |d: NaiveDate| (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        assert_eq!(valid_to.value(0), day(retired.unwrap()));
        assert!(valid_to.is_null(1));
        let valid_from = batch.column_by_name("valid_from").unwrap().as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(valid_from.value(1), day(NaiveDate::from_ymd_opt(2025, 7, 1).unwrap()));
    }

    #[test]
    fn handling_datasets_are_the_lake_tables_with_states_actions_and_keys() {
        let names_and_types = |schema: &SchemaRef| -> Vec<(String, DataType)> {
            schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
        };
        let events = dataset("petition_events").unwrap();
        assert_eq!(names_and_types(&events.schema), names_and_types(&workflow::rows::events_schema()));
        let status = dataset("petition_status").unwrap();
        assert_eq!(names_and_types(&status.schema), names_and_types(&workflow::rows::status_schema()));
        let reports_spec = dataset("weekly_reports").unwrap();
        assert_eq!(names_and_types(&reports_spec.schema), names_and_types(&reports::arrow_schema()));

        let events_schema = events.table_schema();
        assert_eq!(events_schema["primaryKey"], json!(["event_id"]));
        let field = |schema: &Value, name: &str| -> Value {
            schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).cloned().unwrap()
        };
        let actions: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(field(&events_schema, "action")["constraints"]["enum"], json!(actions));
        let states: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        for name in ["from_state", "to_state"] {
            assert_eq!(field(&events_schema, name)["constraints"]["enum"], json!(states));
        }
        assert_eq!(field(&events_schema, "at")["type"], "datetime");
        assert_eq!(field(&events_schema, "days")["type"], "integer");
        let status_schema = status.table_schema();
        assert_eq!(status_schema["primaryKey"], json!(["petition_id"]));
        assert_eq!(field(&status_schema, "state")["constraints"]["enum"], json!(states));
        assert_eq!(field(&status_schema, "answered_on_time")["type"], "boolean");
        for schema in [&events_schema, &status_schema] {
            let references: Vec<(&str, &str)> = schema["foreignKeys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|fk| (fk["fields"][0].as_str().unwrap(), fk["reference"]["resource"].as_str().unwrap()))
                .collect();
            assert_eq!(
                references,
                [("petition_id", "petitions"), ("province_code", "provinces"), ("commune_code", "communes")]
            );
        }
    }

    #[test]
    fn table_schemas_carry_types_constraints_and_keys() {
        let schema = dataset("petitions").unwrap().table_schema();
        assert_eq!(schema["primaryKey"], json!(["id"]));
        assert_eq!(schema["foreignKeys"][1]["reference"]["resource"], "communes");
        let id = &schema["fields"][0];
        assert_eq!(
            (id["name"].as_str(), id["type"].as_str(), id["format"].as_str()),
            (Some("id"), Some("string"), Some("uuid"))
        );
        let received = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == "received_at").unwrap();
        assert_eq!(received["type"], "datetime");
        let channel = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == "channel").unwrap();
        assert!(channel["constraints"]["enum"].as_array().unwrap().contains(&json!("import")));
    }

    #[test]
    fn the_reference_page_in_docs_is_generated_from_the_code() {
        let path = crate::source_file("docs/SCHEMA.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == reference_markdown(),
            "docs/SCHEMA.md is stale: regenerate it with `voxpop schema --markdown > docs/SCHEMA.md`"
        );
    }
}
