use serde_json::json;

use super::*;
use crate::{
    catalog::Catalog,
    pipeline::{CallInfo, Confirmation},
};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("b24-ledger-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("ledger.sqlite3")
}

/// The rows the ledger holds, on every portal (at most 10), newest first.
async fn all_rows(ledger: &Ledger) -> Vec<Value> {
    let query = HistoryQuery {
        limit: 10,
        every_portal: true,
        ..Default::default()
    };
    ledger.history(&query).await.unwrap()
}

fn identity() -> Identity {
    Identity {
        host: "example.bitrix24.com".into(),
        user_id: "1".into(),
    }
}

#[tokio::test]
async fn rows_for_every_outcome_and_the_last_ok_set() {
    let path = temp_path("outcomes");
    let ledger = Ledger::open(&path, identity()).unwrap();
    let spec = &Catalog::shared()
        .get("landing_site_set_rights")
        .unwrap()
        .spec;
    let object = ObjectRef {
        kind: "site".into(),
        id: "645".into(),
    };
    let write = |id: u64, rights: Value, confirmation: Confirmation, outcome: Outcome| {
        let (ledger, object) = (&ledger, &object);
        async move {
            let args = json!({"id": 645, "rights": rights});
            let info = CallInfo {
                call_id: id,
                spec,
                arguments: &args,
                object: Some(object),
                confirmation: &confirmation,
                asked_by: "local user alice through a test",
                runs_as: "user 1",
            };
            ledger.before(info).await.unwrap();
            ledger.after(info, &outcome).await;
        }
    };
    write(
        1,
        json!({"U1": ["read"]}),
        Confirmation::Accepted {
            by: "alice, in the client".into(),
        },
        Ok(json!({"result": true})),
    )
    .await;
    let mut portal_error = ToolFailure::new(FailureKind::Portal, "no");
    portal_error.code = Some("IS_NOT_ADMIN".into());
    write(
        2,
        json!({"U2": ["read"]}),
        Confirmation::Approved {
            by: "alice at a terminal".into(),
        },
        Err(portal_error),
    )
    .await;
    write(
        3,
        json!({"U3": ["read"]}),
        Confirmation::Declined {
            by: "alice, in the client".into(),
        },
        Err(ToolFailure::new(FailureKind::Declined, "d")),
    )
    .await;
    write(
        4,
        json!({"U4": ["read"]}),
        Confirmation::Off,
        Err(ToolFailure::new(FailureKind::OutcomeUnknown, "?")),
    )
    .await;

    let rows = all_rows(&ledger).await;
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unknown", "declined", "error", "ok"]);
    assert_eq!(rows[2]["error_code"], "IS_NOT_ADMIN");
    assert_eq!(rows[3]["answer"], true);
    assert_eq!(rows[3]["object"], "site 645");
    assert_eq!(rows[0]["confirmation"], "not asked (confirmation off)");
    assert_eq!(rows[0]["approved_by"], Value::Null);
    assert_eq!(rows[2]["approved_by"], "alice at a terminal");
    assert_eq!(rows[3]["asked_by"], "local user alice through a test");
    assert_eq!(rows[3]["runs_as"], "user 1");
    let known = ledger.known("landing_site_set_rights", &object).await;
    let ok = known.ok.unwrap();
    assert_eq!(ok.arguments["rights"], json!({"U1": ["read"]}));
    // The attempt after it whose answer was lost may have applied: it is known as such.
    let unsure = known.unsure.unwrap();
    assert_eq!(unsure.arguments["rights"], json!({"U4": ["read"]}));
    let filtered = ledger
        .history(&HistoryQuery {
            id: Some("645".into()),
            tool: Some("nope".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(filtered.is_empty());
    drop(ledger);
    // Reopening keeps the rows and the schema version.
    let again = Ledger::open(&path, identity()).unwrap();
    assert_eq!(all_rows(&again).await.len(), 4);
}

#[test]
fn refuses_a_newer_schema() {
    let path = temp_path("newer");
    drop(Ledger::open(&path, identity()).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = Ledger::open(&path, identity()).unwrap_err().to_string();
    assert!(err.contains("newer"), "{err}");
}

#[tokio::test]
async fn a_deferred_ledger_opens_its_file_at_the_first_write_and_refuses_writes_it_cannot_record() {
    let spec = &Catalog::shared()
        .get("landing_site_set_rights")
        .unwrap()
        .spec;
    let args = json!({"id": 645, "rights": {"U1": ["read"]}});
    let accepted = Confirmation::Accepted {
        by: "a test".into(),
    };
    let info = CallInfo {
        call_id: 1,
        spec,
        arguments: &args,
        object: None,
        confirmation: &accepted,
        asked_by: "a test",
        runs_as: "user 1",
    };

    let path = temp_path("deferred");
    let ledger = Ledger::deferred(&path, identity()).unwrap();
    assert!(!path.exists(), "nothing is opened before it is needed");
    ledger.before(info).await.unwrap();
    ledger.after(info, &Ok(json!({"result": true}))).await;
    assert!(path.exists());
    assert_eq!(all_rows(&ledger).await.len(), 1);

    // A file that is not a database: found at the first write, which is refused, not sent.
    let broken = temp_path("deferred-broken");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    std::fs::write(
        &broken,
        b"this is not an SQLite file, and it is long enough to be read as one",
    )
    .unwrap();
    let ledger = Ledger::deferred(&broken, identity()).unwrap();
    let refused = ledger.before(info).await.unwrap_err();
    assert_eq!(refused.kind, FailureKind::Refused);
    assert!(
        refused.text.contains("Nothing was written"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains(&broken.display().to_string()),
        "{}",
        refused.text
    );
    let object = ObjectRef {
        kind: "site".into(),
        id: "645".into(),
    };
    assert!(
        ledger
            .known("landing_site_set_rights", &object)
            .await
            .ok
            .is_none()
    );
    assert!(
        ledger
            .history(&HistoryQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_write_given_up_while_its_row_waits_is_recorded_as_never_sent() {
    let spec = &Catalog::shared()
        .get("landing_site_set_rights")
        .unwrap()
        .spec;
    let args = json!({"id": 645, "rights": {"U1": ["read"]}});
    let accepted = Confirmation::Accepted {
        by: "a test".into(),
    };
    let info = CallInfo {
        call_id: 1,
        spec,
        arguments: &args,
        object: None,
        confirmation: &accepted,
        asked_by: "a test",
        runs_as: "user 1",
    };
    let path = temp_path("abandoned");
    let ledger = Ledger::open(&path, identity()).unwrap();
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    // The client goes away while the row waits for the lock: the call's future is dropped.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), ledger.before(info)).await;
    assert!(
        gave_up.is_err(),
        "the row went in while the file was locked"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    // The insert goes on without anyone waiting, and marks its row instead of leaving `unknown`.
    let mut rows = Vec::new();
    for _ in 0..500 {
        rows = all_rows(&ledger).await;
        if rows.first().is_some_and(|r| r["outcome"] != "unknown") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "error");
    assert_eq!(rows[0]["error_code"], changes::NOT_SENT);
    assert!(ledger.inner.rows().is_empty());
}
