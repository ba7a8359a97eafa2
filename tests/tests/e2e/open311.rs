//! Open311 GeoReport v2: the interface driven by Open311 client libraries nobody here wrote —
//! civicbot's `Open311Client` (files requests, reads JSON) and georeport's `GeoReport` (reads
//! JSON and XML), installed by `scripts/test.sh` — and its errors in GeoReport's format.

use std::collections::HashSet;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;
use voxpop_tests::paths::{py_script, python};
use voxpop_tests::server::Server;

fn ids_of(list: &Value) -> HashSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list of requests: {list}"))
        .iter()
        .map(|request| request["service_request_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn open311_clients_discover_file_and_read_requests() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    // A token exists, so the API's own read paths need one; GeoReport reads stay public.
    voxpop_tests::server::create_token(&data_dir, "00", "admin");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();

    // Formats and errors as any HTTP client sees them.
    let response = client.get(server.url("/open311/v2/services.xml")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    assert!(
        response.text().await.unwrap().starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service>")
    );
    for path in ["/open311/v2/services.csv", "/open311/v2/nothing.json", "/open311/v2/a/b/c.json"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body[0]["code"], 404, "{path}: {body}");
    }
    let response = client
        .post(server.url("/open311/v2/requests.xml"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("api_key=k&description=x&attribute%5Bcommune_code%5D=00004")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("<errors><error><code>400</code><description>service_code: required</description></error>"),
        "{text}"
    );
    // The API's own read paths still want the token.
    assert_eq!(client.get(server.url("/api/v1/search?q=")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let script = py_script("open311_client.py");
    let output = Command::new(python()).arg(script).arg(server.url("/open311/v2")).output().expect("run python");
    assert!(
        output.status.success(),
        "{}\n--- server ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.output()
    );
    let raw = String::from_utf8(output.stdout).unwrap();
    let report: Value = serde_json::from_str(&raw).unwrap();

    // Nothing personal in anything the interface answered.
    for secret in ["0912345678", "Nguyễn Văn An", "an.nguyen@", "Nguyễn"] {
        assert!(!raw.contains(secret), "{secret} leaked through Open311");
    }

    // Discovery.
    let endpoint = &report["discovery"]["endpoints"][0];
    assert_eq!(endpoint["specification"], "http://wiki.open311.org/GeoReport_v2");
    assert_eq!(endpoint["url"], server.url("/open311/v2"));
    assert_eq!(endpoint["formats"], serde_json::json!(["text/xml", "application/json"]));
    assert_eq!(
        report["discovery_xml"]["discovery"]["endpoints"]["endpoint"]["formats"]["format"][1],
        "application/json"
    );

    // Services: the topics of the taxonomy, the same in JSON and XML.
    let taxonomy = voxpop_schema::Taxonomy::default_embedded();
    let codes: Vec<&str> = taxonomy.topics().iter().map(|t| t.code.as_str()).collect();
    for key in ["services_json", "services_georeport_json", "services_xml"] {
        let services = report[key].as_array().unwrap();
        let listed: Vec<&str> = services.iter().map(|s| s["service_code"].as_str().unwrap()).collect();
        assert_eq!(listed, codes, "{key}");
    }
    let road = &report["services_json"][2];
    assert_eq!(road["service_name"], "Đường sá và hạ tầng");
    assert_eq!((road["metadata"].as_bool(), road["type"].as_str()), (Some(true), Some("realtime")));
    assert!(road["keywords"].as_str().unwrap().contains("ổ gà"));
    assert_eq!(report["services_xml"][2]["service_name"], "Đường sá và hạ tầng");
    assert_eq!(report["services_xml"][2]["metadata"], "true");
    assert_eq!(report["definition_json"]["attributes"][0]["code"], "commune_code");
    assert_eq!(report["definition_xml"]["service_code"], "infrastructure");
    assert_eq!(report["definition_xml"]["attributes"]["attribute"][0]["code"], "commune_code");

    // Filing: id, token (the tracking code) and a notice naming the Front committee.
    let posted = &report["post_commune"][0];
    let id = posted["service_request_id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    let token = posted["token"].as_str().unwrap();
    assert_eq!(token.len(), 14, "{token}");
    assert!(posted["service_notice"].as_str().unwrap().contains("Ủy ban MTTQ Việt Nam phường Ba Đình"));
    assert_eq!(posted["account_id"], Value::Null);
    assert_eq!(report["token"][0]["service_request_id"], id);
    assert_eq!(report["token_lowercase_xml"]["service_requests"]["request"]["service_request_id"], id);
    let position_id = report["post_position"][0]["service_request_id"].as_str().unwrap();
    let old_code_id = report["post_old_code"][0]["service_request_id"].as_str().unwrap();

    // Read back once the lake has them: the commune named, the nearest one, an old code resolved.
    let by_commune = &report["request_commune"];
    assert_eq!(by_commune["service_request_id"], id);
    assert_eq!(by_commune["status"], "open");
    assert_eq!(by_commune["extended_attributes"]["commune_code"], "00004");
    assert_eq!(by_commune["extended_attributes"]["handling_state"], "received");
    assert_eq!(by_commune["address"], "Phường Ba Đình, Thành phố Hà Nội");
    assert_eq!(by_commune["agency_responsible"], "Ủy ban MTTQ Việt Nam phường Ba Đình");
    assert_eq!(by_commune["service_code"], "infrastructure");
    assert_eq!(by_commune["service_name"], "Đường sá và hạ tầng");
    let description = by_commune["description"].as_str().unwrap();
    assert!(description.starts_with("Mặt đường có nhiều ổ gà lớn"), "{description}");
    assert!(description.contains("*******678") && description.contains("Địa chỉ: Số 12 phố Đội Cấn"), "{description}");
    assert!(by_commune["requested_datetime"].as_str().unwrap().ends_with("+07:00"));
    assert_eq!(report["request_commune_georeport"], *by_commune);

    let by_position = &report["request_position"];
    assert_eq!(by_position["extended_attributes"]["commune_code"], "21529", "{by_position}");
    assert_eq!(by_position["address"], "Xã Ba Vì, Tỉnh Quảng Ngãi");
    assert_eq!(by_position["service_code"], "environment");
    assert!((by_position["lat"].as_f64().unwrap() - 14.7465).abs() <= 0.0006, "{by_position}");
    assert!((by_position["long"].as_f64().unwrap() - 108.552).abs() <= 0.0006, "{by_position}");
    let position_xml = &report["request_position_xml"];
    assert_eq!(position_xml["service_request_id"], position_id);
    assert_eq!(position_xml["extended_attributes"]["commune_code"], "21529");
    assert_eq!(position_xml["status"], "open");
    assert_eq!(position_xml["media_url"], Value::Null);
    assert_eq!(report["request_old_code"]["extended_attributes"]["commune_code"], "00097");

    // Lists with filters.
    let all: HashSet<String> = [id, position_id, old_code_id].into_iter().map(str::to_owned).collect();
    let roads: HashSet<String> = [id, old_code_id].into_iter().map(str::to_owned).collect();
    assert_eq!(ids_of(&report["list_infrastructure_open"]), roads);
    assert_eq!(ids_of(&report["list_infrastructure_xml"]), roads);
    assert_eq!(ids_of(&report["list_two_services"]), all);
    assert_eq!(ids_of(&report["list_default_window"]), all);
    assert_eq!(ids_of(&report["list_closed"]), HashSet::new());
    assert_eq!(ids_of(&report["list_long_ago"]), HashSet::new());
    assert_eq!(ids_of(&report["list_by_ids"]), [id, position_id].into_iter().map(str::to_owned).collect());
    assert_eq!(ids_of(&report["list_page_size"]), [old_code_id.to_owned()].into(), "newest first");

    // Errors, each in GeoReport's format with the HTTP status as its code.
    for (key, status, needle) in [
        ("error_missing_service_code", 400, "service_code: required"),
        ("error_missing_api_key", 403, "api_key"),
        ("error_no_commune", 400, "attribute[commune_code]"),
        ("error_bad_status", 400, "status"),
        ("error_bad_date", 400, "start_date"),
        ("error_unknown_request", 404, "not found"),
    ] {
        let error = &report[key];
        assert_eq!(error["status"], status, "{key}: {error}");
        assert_eq!(error["body"][0]["code"], status, "{key}: {error}");
        assert!(error["body"][0]["description"].as_str().unwrap().contains(needle), "{key}: {error}");
    }
    let unknown = &report["error_unknown_service_xml"];
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["body"]["errors"]["error"]["code"], "404");
    assert!(unknown["content_type"].as_str().unwrap().starts_with("text/xml"));
}

/// Status, content type and the descriptions of an Open311 error list (JSON or XML).
async fn open311_error(response: reqwest::Response) -> (StatusCode, String, Vec<String>) {
    let status = response.status();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    let descriptions = if content_type.starts_with("text/xml") {
        text.split("<description>")
            .skip(1)
            .map(|rest| rest.split("</description>").next().unwrap().replace("&amp;", "&").replace("&lt;", "<"))
            .collect()
    } else {
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"));
        body.as_array()
            .unwrap_or_else(|| panic!("an error list: {text}"))
            .iter()
            .map(|error| {
                assert_eq!(error["code"], status.as_u16(), "{text}");
                error["description"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    (status, content_type, descriptions)
}

/// Asserts a 400 in the format of `path` whose one description starts with `expected`.
async fn assert_refused(response: reqwest::Response, path: &str, expected: &str) {
    let (status, content_type, descriptions) = open311_error(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {descriptions:?}");
    let format = if path.contains(".xml") { "text/xml" } else { "application/json" };
    assert!(content_type.starts_with(format), "{path}: {content_type}");
    assert!(
        descriptions.iter().any(|d| d.starts_with(expected)),
        "{path}: expected `{expected}`, got {descriptions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn open311_parameters_are_read_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::new();
    let form = "application/x-www-form-urlencoded";
    let post = |path: &str, query: &str, body: Vec<u8>| {
        client.post(server.url(&format!("/open311/v2/{path}{query}"))).header("content-type", form).body(body).send()
    };
    let valid = "service_code=infrastructure&description=%C3%94+g%C3%A0+gi%E1%BB%AFa+%C4%91%C6%B0%E1%BB%9Dng\
                 &attribute%5Bcommune_code%5D=00004";

    // GET requests: each parameter named, in both formats.
    for format in ["json", "xml"] {
        let path = format!("/open311/v2/requests.{format}");
        for (query, expected) in [
            ("start_date=2025-01-01&start_date=2025-02-01", "start_date: given more than once, with different values"),
            ("page_size=5&page_size=6", "page_size: given more than once"),
            ("page_size=-1", "page_size: `-1` is not a whole number from 1 to 1000"),
            ("page_size=abc", "page_size: `abc` is not a whole number from 1 to 1000"),
            ("page_size=0", "page_size: `0` is not a whole number from 1 to 1000"),
            ("page_size=99999999999999999999999", "page_size: `99999999999999999999999` is not a whole number"),
            ("page=0", "page: `0` is not a whole number from 1 to 10"),
            ("page=-1", "page: `-1` is not a whole number from 1 to 10"),
            ("page_size=100&page=101", "page: `101` is not a whole number from 1 to 100"),
            ("page=", "page: empty"),
            ("service_code=", "service_code: an empty item"),
            ("service_code=land,", "service_code: an empty item"),
            ("status=", "status: an empty item"),
            ("start_date=", "start_date: empty"),
            ("service_code=%FF", "service_code: not UTF-8 once percent-decoded"),
            ("end_date=0001-01-01", "end_date: `0001-01-01` is outside the years 1970 to 9999"),
        ] {
            let response = client.get(format!("{}?{query}", server.url(&path))).send().await.unwrap();
            assert_refused(response, &format!("{path}?{query}"), expected).await;
        }
    }
    // What a standard client sends still works: repeats of list parameters, the same value twice,
    // unknown (extension) parameters.
    for query in [
        "status=open&status=closed&service_code=land&service_code=health,education",
        "page_size=5&page_size=5&page=2&jurisdiction_id=vn",
        "service_request_id=0199aaaa-0000-7000-8000-000000000000&service_request_id=x",
    ] {
        let response = client.get(format!("{}?{query}", server.url("/open311/v2/requests.json"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        assert_eq!(response.json::<Value>().await.unwrap(), serde_json::json!([]), "{query}");
    }

    // POST requests: in the body, in the query, once in each.
    for format in ["json", "xml"] {
        let path = format!("requests.{format}");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("", format!("api_key=k&{valid}&service_code=land").into_bytes(), "service_code: given more than once"),
            ("?api_key=a", format!("api_key=b&{valid}").into_bytes(), "api_key: given more than once"),
            ("?description=x", format!("api_key=k&{valid}").into_bytes(), "description: given more than once"),
            (
                "",
                b"api_key=k&service_code=land&attribute%5Bcommune_code%5D=00004&description=%FFa".to_vec(),
                "description: not UTF-8 once percent-decoded",
            ),
            (
                "",
                b"api_key=k&service_code=land&attribute%5Bcommune_code%5D=00004&description=Ph\xe1t".to_vec(),
                "description: the request body is not valid UTF-8 (byte 76)",
            ),
            ("", format!("api_key=k&{valid}&lat=21.03").into_bytes(), "long: required with lat"),
            ("", format!("api_key=k&{valid}&long=105.8").into_bytes(), "lat: required with long"),
            ("", format!("api_key=k&{valid}&lat=95&long=105.8").into_bytes(), "lat: `95` is outside -90 to 90"),
            ("", format!("api_key=k&{valid}&media_url=anh.jpg").into_bytes(), "media_url: `anh.jpg` is not an http"),
            ("", format!("api_key=k&{valid}&first_name=An%1B").into_bytes(), "first_name: holds the control character"),
            ("", format!("api_key=k&{valid}&service_code=").into_bytes(), "service_code: given more than once"),
        ];
        for (query, body, expected) in cases {
            let response = post(&path, query, body).await.unwrap();
            assert_refused(response, &format!("{path}{query}"), expected).await;
        }
    }

    // Accepted: api_key in the query and, the same, in the body; blank optional fields absent.
    let mut filed = Vec::new();
    for (format, extra) in [("json", "&email=&phone="), ("xml", "&media_url=https%3A%2F%2Fexample.vn%2Fo-ga.jpg")] {
        let response =
            post(&format!("requests.{format}"), "?api_key=k", format!("api_key=k&{valid}{extra}").into_bytes())
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{format}");
        let text = response.text().await.unwrap();
        assert!(text.contains("service_request_id"), "{text}");
        let id = match format {
            "json" => {
                serde_json::from_str::<Value>(&text).unwrap()[0]["service_request_id"].as_str().unwrap().to_owned()
            }
            _ => text.split("<service_request_id>").nth(1).unwrap().split('<').next().unwrap().to_owned(),
        };
        filed.push(id);
    }

    // Pages of the list: newest first, one request a page, nothing past the last.
    server.wait_written(2, std::time::Duration::from_secs(60)).await;
    let mut paged = Vec::new();
    for page in ["1", "2", "3"] {
        let list = server.get_json("/open311/v2/requests.json", &[("page_size", "1"), ("page", page)]).await;
        paged.push(
            list.as_array()
                .unwrap()
                .iter()
                .map(|r| r["service_request_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(paged, [vec![filed[1].clone()], vec![filed[0].clone()], vec![]]);
    let first = server.get_json("/open311/v2/requests.json", &[("service_request_id", &filed[0])]).await;
    let description = first[0]["description"].as_str().unwrap();
    assert!(description.starts_with("Ô gà giữa đường") && !description.contains('\u{FFFD}'), "{description}");
}
