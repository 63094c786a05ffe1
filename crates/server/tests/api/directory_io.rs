//! Importing and exporting the directory: CSV and XLSX, dry runs row by row, one transaction,
//! round trips, broken files, permissions, and 10,000 rows timed.

use crate::both_backends;
use crate::common::{Reply, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    import_dry_run_and_apply,
    import_refuses_bad_files,
    export_round_trips,
    import_permissions,
    import_ten_thousand_rows,
);

const HEADER: &str = "kind,name,login_name,department,title,extension,mobile,landline,email\n";

async fn import(s: &TestServer, token: &str, dry_run: bool, bytes: Vec<u8>) -> Reply {
    s.raw(
        Method::POST,
        &format!("/api/v1/directory/import?dry_run={dry_run}"),
        Some(token),
        Some(("text/csv", bytes)),
    )
    .await
}

async fn download(s: &TestServer, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let resp = s
        .http
        .get(format!("{}/api/v1{path}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.bytes().await.expect("body").to_vec())
}

fn actions(reply: &Reply) -> Vec<String> {
    reply.body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("rows in {}", reply.body))
        .iter()
        .map(|r| r["action"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn row_errors(reply: &Reply, i: usize) -> Vec<String> {
    reply.body["rows"][i]["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn people(s: &TestServer, token: &str) -> Vec<Value> {
    s.get("/directory?limit=200", token).await.expect(200).body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn import_dry_run_and_apply(s: &TestServer) {
    let admin = s.admin().await;
    s.post(
        "/contacts",
        &admin,
        json!({ "name": "Old Contact", "extension": "2001", "book": "enterprise" }),
    )
    .await
    .expect(201);
    let csv = format!(
        "{HEADER}user,张三,zhang.san,Sales/North,Manager,1001,+8613800138000,,zs@example.com\n\
         contact,Old Contact,,Sales,Buyer,2001,,,\n\
         contact,New Contact,,Sales/North,,,,01012345678,\n\
         user,Bad Number,bad.number,,,12a,call me,,nobody\n\
         user,Dup,zhang.san,,,,,,\n\
         frog,Nobody,,,,,,,\n\
         contact,No Number,,,,,,,\n"
    );
    let dry = import(s, &admin, true, csv.clone().into_bytes()).await;
    dry.expect(200);
    assert_eq!(
        actions(&dry),
        [
            "add", "update", "add", "refuse", "refuse", "refuse", "refuse"
        ],
        "{}",
        dry.body
    );
    assert_eq!(dry.body["rows"][1]["matched_by"], "extension");
    assert_eq!(
        dry.body["rows"][1]["changes"],
        json!(["department", "title"])
    );
    assert_eq!(
        row_errors(&dry, 3),
        ["extension", "mobile", "email"],
        "{}",
        dry.body
    );
    assert_eq!(row_errors(&dry, 4), ["login_name"]);
    assert_eq!(row_errors(&dry, 5), ["kind"]);
    assert_eq!(row_errors(&dry, 6), ["mobile"]);
    assert_eq!(
        dry.body["departments_created"],
        json!(["Sales", "Sales/North"])
    );
    // A dry run writes nothing; applying a file with refused rows writes nothing either.
    assert_eq!(people(s, &admin).await.len(), 2);
    import(s, &admin, false, csv.into_bytes())
        .await
        .expect_problem(422, Some("rows[3].extension"));
    assert_eq!(people(s, &admin).await.len(), 2);
    let departments = s.get("/departments", &admin).await;
    assert_eq!(departments.body["items"], json!([]));
    // The good rows alone apply, in one go.
    let good = format!(
        "{HEADER}user,张三,zhang.san,Sales/North,Manager,1001,+8613800138000,,zs@example.com\n\
         contact,Old Contact,,Sales,Buyer,2001,,,\n\
         contact,New Contact,,Sales/North,,,,01012345678,\n"
    );
    let applied = import(s, &admin, false, good.clone().into_bytes()).await;
    applied.expect(200);
    assert_eq!(applied.body["applied"], true);
    assert_eq!(applied.body["added"], 2);
    assert_eq!(applied.body["updated"], 1);
    let found = s.get("/directory?q=zs", &admin).await.expect(200).body["items"].clone();
    assert_eq!(found[0]["name"], "张三", "{found}");
    assert_eq!(found[0]["title"], "Manager");
    // Again: nothing to do.
    let again = import(s, &admin, true, good.into_bytes()).await;
    assert_eq!(actions(&again), ["unchanged", "unchanged", "unchanged"]);
    // The imported user cannot log in until given a password.
    s.login("zhang.san", "some-password-1").await.expect(401);
    // The import is in the audit log.
    let log = s
        .get("/audit-events?limit=200", &admin)
        .await
        .expect(200)
        .body
        .clone();
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["action"] == "importDirectory" && e["outcome"] == "ok"),
        "{log}"
    );
}

async fn import_refuses_bad_files(s: &TestServer) {
    let admin = s.admin().await;
    for (bytes, field) in [
        (b"kind,nom\n".to_vec(), "header"),
        (b"name\nx\n".to_vec(), "header"),
        (b"".to_vec(), "file"),
        (b"PK\x03\x04not a zip at all".to_vec(), "file"),
        (vec![0xff, 0xfe, 0x00, 0x41], "file"),
        (
            format!("{HEADER}contact,{},,,,,,,\n", "x".repeat(2000)).into_bytes(),
            "file",
        ),
    ] {
        import(s, &admin, true, bytes)
            .await
            .expect_problem(422, Some(field));
    }
    // A ZIP bomb: one entry that inflates far past the budget.
    let bomb = {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.start_file(
            "xl/worksheets/sheet1.xml",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("entry");
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..80 {
            zip.write_all(&zeros).expect("write");
        }
        zip.finish().expect("finish");
        out.into_inner()
    };
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let reply = import(s, &admin, true, bomb).await;
    reply.expect_problem(422, Some("file"));
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("inflates"),
        "{}",
        reply.body
    );
    // Larger than the bound: 413. Only just larger: the import reads up to its bound before it
    // answers and closes, and a client with much more still to write gets a broken pipe
    // instead of the answer (as the rooms API's oversize test, the rest fits in the buffers).
    let huge = vec![b'a'; 8 * 1024 * 1024 + 64 * 1024];
    import(s, &admin, true, huge)
        .await
        .expect_problem(413, None);
    // Too many rows.
    let mut many = HEADER.to_owned();
    for i in 0..10_001 {
        many.push_str(&format!("contact,P{i},,,,,,{},\n", 10_000_000 + i));
    }
    import(s, &admin, true, many.into_bytes())
        .await
        .expect_problem(422, Some("file"));
}

async fn export_round_trips(s: &TestServer) {
    let admin = s.admin().await;
    let csv = format!(
        "{HEADER}user,李四,li.si,研发/平台,Engineer,1002,+8613900139000,,ls@example.com\n\
         contact,=SUM(A1),,研发,,2002,,,\n\
         contact,Mobile Only,,,,,13700137000,,\n"
    );
    import(s, &admin, false, csv.into_bytes()).await.expect(200);
    for format in ["csv", "xlsx"] {
        let (status, ct, bytes) =
            download(s, &admin, &format!("/directory/export?format={format}")).await;
        assert_eq!(status, 200);
        assert!(
            ct.starts_with(if format == "csv" {
                "text/csv"
            } else {
                "application/vnd.openxml"
            }),
            "{ct}"
        );
        if format == "csv" {
            let text = String::from_utf8(bytes.clone()).expect("utf-8");
            assert!(text.contains("'=SUM(A1)"), "formula guarded: {text}");
            assert!(text.contains("研发/平台"), "{text}");
        }
        let dry = import(s, &admin, true, bytes).await;
        dry.expect(200);
        assert_eq!(dry.body["added"], 0, "{format}: {}", dry.body);
        assert_eq!(dry.body["updated"], 0, "{format}: {}", dry.body);
        assert_eq!(dry.body["refused"], 0, "{format}: {}", dry.body);
        assert_eq!(dry.body["format"], format);
    }
    // Templates in both formats and languages import as empty files.
    for path in [
        "/directory/template?format=csv",
        "/directory/template?format=xlsx",
        "/directory/template?format=xlsx&lang=zh",
        "/directory/template?format=csv&lang=zh",
    ] {
        let (status, _, bytes) = download(s, &admin, path).await;
        assert_eq!(status, 200, "{path}");
        let dry = import(s, &admin, true, bytes).await;
        dry.expect(200);
        assert_eq!(dry.body["rows"], json!([]), "{path}");
    }
    let (status, _, _) = download(s, &admin, "/directory/template?format=pdf").await;
    assert_eq!(status, 422);
}

async fn import_permissions(s: &TestServer) {
    let admin = s.admin().await;
    s.user(&admin, "plain", "user", None).await;
    let plain = s.token("plain", "plain-password").await;
    import(s, &plain, true, HEADER.as_bytes().to_vec())
        .await
        .expect_problem(403, None);
    let (status, _, _) = download(s, &plain, "/directory/export").await;
    assert_eq!(status, 403);
    let log = s
        .get("/audit-events?limit=200", &admin)
        .await
        .expect(200)
        .body
        .clone();
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["action"] == "importDirectory" && e["outcome"] == "denied"),
        "{log}"
    );
    // Another tenant's admin cannot import into this tenant.
    let other = s
        .post("/tenants", &admin, json!({ "name": "Other" }))
        .await
        .expect(201)
        .id();
    s.user(&admin, "other.admin", "tenant_admin", Some(&other))
        .await;
    let oa = s.token("other.admin", "other.admin-password").await;
    let own = s.get("/me", &admin).await;
    let mine = own.body["tenant_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.raw(
        Method::POST,
        &format!("/api/v1/directory/import?tenant_id={mine}"),
        Some(&oa),
        Some(("text/csv", HEADER.as_bytes().to_vec())),
    )
    .await
    .expect_problem(404, None);
    // A login name of another tenant is refused, not taken over.
    let csv = format!("{HEADER}user,Clash,plain,,,,,,\n");
    let dry = import(s, &oa, true, csv.into_bytes()).await;
    assert_eq!(row_errors(&dry, 0), ["login_name"], "{}", dry.body);
}

async fn import_ten_thousand_rows(s: &TestServer) {
    let admin = s.admin().await;
    let mut csv = HEADER.to_owned();
    for i in 0..5_000 {
        csv.push_str(&format!(
            "user,用户{i},user{i},Dept{}/Team{},Staff,{},+86139{:08},,user{i}@example.com\n",
            i % 20,
            i % 7,
            10_000 + i,
            i
        ));
        csv.push_str(&format!(
            "contact,Contact {i},,Dept{}/Partners,,,+86138{:08},,\n",
            i % 20,
            i
        ));
    }
    let bytes = csv.into_bytes();
    let started = std::time::Instant::now();
    let dry = import(s, &admin, true, bytes.clone()).await;
    let dry_time = started.elapsed();
    dry.expect(200);
    assert_eq!(dry.body["added"], 10_000, "{}", dry.body["refused"]);
    let started = std::time::Instant::now();
    let applied = import(s, &admin, false, bytes.clone()).await;
    let apply_time = started.elapsed();
    applied.expect(200);
    let started = std::time::Instant::now();
    let again = import(s, &admin, true, bytes).await;
    let again_time = started.elapsed();
    assert_eq!(again.body["unchanged"], 10_000);
    println!(
        "IMPORT 10,000 rows: dry run {:.2} s, apply {:.2} s, dry run against them {:.2} s",
        dry_time.as_secs_f64(),
        apply_time.as_secs_f64(),
        again_time.as_secs_f64()
    );
    let found = s
        .get("/directory?q=user4999%40", &admin)
        .await
        .expect(200)
        .body["items"]
        .clone();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}
