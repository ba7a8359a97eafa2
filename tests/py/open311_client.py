"""Drives voxpop's Open311 GeoReport v2 interface with Open311 client libraries nobody here wrote.

- civicbot (PyPI `civicbot`): its `Open311Client` reads services, definitions, requests and
  tokens as JSON and files requests (form-encoded POST, `attribute[...]`), after checking them
  against the live service list and definition (`validate_remote=True`).
- georeport (PyPI `georeport`): its `GeoReport` reads services, definitions and requests as
  JSON and as XML (parsed with xmltodict).

Usage: open311_client.py BASE_URL (e.g. http://127.0.0.1:8080/open311/v2). Prints one JSON
report on stdout: what the libraries returned; the Rust test asserts on it.
"""

import json
import sys
import time
from datetime import datetime, timedelta, timezone

import requests
import xmltodict
from civicbot import Endpoint, HttpError, HttpTransport, Open311Client
from civicbot.http import RateLimiter
from georeport import GeoReport


def as_list(value):
    """xmltodict gives one child as a dict and several as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def http_error(call):
    """Runs `call`, which must fail with an HTTP error: its status and parsed body."""
    try:
        call()
    except HttpError as error:
        return {"status": error.status, "body": json.loads(error.body)}
    except requests.HTTPError as error:
        response = error.response
        body = response.content
        parsed = xmltodict.parse(body) if body.lstrip().startswith(b"<") else json.loads(body)
        return {"status": response.status_code, "body": parsed, "content_type": response.headers.get("content-type")}
    raise AssertionError("the call did not fail")


def wait_for_request(client, request_id, timeout=60.0):
    """Polls GET requests/{id}.json until the lake has the petition."""
    started = time.monotonic()
    while True:
        try:
            return client.get_request(request_id)
        except HttpError as error:
            if error.status != 404 or time.monotonic() - started > timeout:
                raise
        time.sleep(0.2)


def main():
    base = sys.argv[1].rstrip("/")
    report = {}
    transport = HttpTransport(rate_limiter=RateLimiter(min_interval=0.0), timeout=60.0)
    endpoint = Endpoint(id="voxpop", name="voxpop (local)", base_url=base, write=True)
    client = Open311Client(endpoint, transport=transport)
    reader_json = GeoReport(base)
    reader_xml = GeoReport(base, output_format="xml")

    # Discovery (civicbot has no call for it: its transport fetches the document).
    report["discovery"] = transport.get_json(base + "/discovery.json")
    report["discovery_xml"] = xmltodict.parse(transport.get_bytes(base + "/discovery.xml"))

    # Services and a definition, JSON and XML.
    report["services_json"] = client.list_services()
    report["services_georeport_json"] = reader_json.get_service_list()
    report["services_xml"] = as_list(reader_xml.get_service_list())
    report["definition_json"] = client.get_service_definition("infrastructure")
    report["definition_xml"] = reader_xml.get_service_definition("infrastructure")

    # Requests filed through civicbot, checked against the live definition first.
    window_start = datetime.now(timezone.utc) - timedelta(minutes=5)
    by_commune = client.create_request(
        "infrastructure",
        dry_run=False,
        confirm="SEND",
        api_key="voxpop-e2e",
        validate_remote=True,
        description="Mặt đường có nhiều ổ gà lớn, xe máy ngã liên tục. Gọi 0912345678 để biết thêm.",
        address_string="Số 12 phố Đội Cấn",
        attributes={"commune_code": "00004"},
        first_name="An",
        last_name="Nguyễn Văn",
        phone="0912345678",
        email="an.nguyen@example.vn",
    )
    report["post_commune"] = by_commune.response
    # Only a position: the commune whose centre is nearest (Xã Ba Vì, Quảng Ngãi: 14.7459, 108.553).
    by_position = client.create_request(
        "environment",
        dry_run=False,
        confirm="SEND",
        api_key="voxpop-e2e",
        validate_remote=True,
        description="Cơ sở chăn nuôi xả nước thải ra suối, mùi hôi nồng nặc cả ngày.",
        lat=14.7465,
        lng=108.5521,
    )
    report["post_position"] = by_position.response
    # A commune code from before the 2025 reform (00001 is now 00097).
    by_old_code = client.create_request(
        "infrastructure",
        dry_run=False,
        confirm="SEND",
        api_key="voxpop-e2e",
        validate_remote=True,
        description="Đèn đường hỏng cả tháng nay, buổi tối rất tối.",
        address_string="Ngõ 5",
        attributes={"commune_code": "00001", "commune_code_version": "pre2025"},
    )
    report["post_old_code"] = by_old_code.response
    ids = [response[0]["service_request_id"] for response in (by_commune.response, by_position.response)]
    old_id = by_old_code.response[0]["service_request_id"]

    # The token answers at once (the lake may not have the petition yet).
    token = by_commune.response[0]["token"]
    report["token"] = client.get_token(token)
    report["token_lowercase_xml"] = xmltodict.parse(transport.get_bytes(f"{base}/tokens/{token.lower()}.xml"))

    # Each request once the lake has it: civicbot (JSON), georeport (JSON and XML).
    report["request_commune"] = wait_for_request(client, ids[0])
    report["request_position"] = wait_for_request(client, ids[1])
    report["request_old_code"] = wait_for_request(client, old_id)
    report["request_commune_georeport"] = reader_json.get_service_request(ids[0])
    report["request_position_xml"] = reader_xml.get_service_request(ids[1])

    # Lists with the standard filters.
    start = window_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report["list_infrastructure_open"] = reader_json.get_service_requests(
        service_code="infrastructure", start_date=start, end_date=end, status="open"
    )
    report["list_infrastructure_xml"] = as_list(
        reader_xml.get_service_requests(service_code="infrastructure", start_date=start, end_date=end)
    )
    report["list_two_services"] = client.list_requests(service_code="infrastructure,environment", start_date=start)
    report["list_closed"] = client.list_requests(status="closed")
    report["list_by_ids"] = client.list_requests(service_request_ids=ids)
    report["list_page_size"] = client.list_requests(page_size=1)
    report["list_default_window"] = reader_json.get_service_requests()
    past = (datetime.now(timezone.utc) - timedelta(days=400)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report["list_long_ago"] = reader_json.get_service_requests(start_date=past, end_date=start)

    # Errors in Open311's format.
    report["error_missing_service_code"] = http_error(
        lambda: transport.post_form(
            base + "/requests.json",
            {"api_key": "voxpop-e2e", "description": "Không có loại dịch vụ", "attribute[commune_code]": "00004"},
        )
    )
    report["error_missing_api_key"] = http_error(
        lambda: transport.post_form(base + "/requests.json", {"service_code": "land", "description": "x"})
    )
    report["error_no_commune"] = http_error(
        lambda: transport.post_form(
            base + "/requests.json", {"api_key": "k", "service_code": "land", "description": "Không có địa điểm"}
        )
    )
    report["error_unknown_service_xml"] = http_error(lambda: reader_xml.get_service_definition("nope"))
    report["error_bad_status"] = http_error(lambda: client.list_requests(status="pending"))
    report["error_bad_date"] = http_error(lambda: client.list_requests(start_date="15/09/2025"))
    report["error_unknown_request"] = http_error(
        lambda: client.get_request("0199aaaa-0000-7000-8000-000000000000")
    )

    json.dump(report, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
