//! `scripts/moto-server.py` itself: its DynamoDB process (`DynamoDbProcess`) holds the only
//! tables, so every DynamoDB request must reach it, and its death must fail requests, not hang them.

use std::time::Duration;
use tributary_testing::Moto;
use tributary_tests::functions::child_pids;

/// A DynamoDB request as raw HTTP, signed (loosely: moto checks no signature) for `scope`.
async fn dynamodb_request(endpoint: &str, scope: &str, action: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("Authorization", format!("AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{scope}/aws4_request, SignedHeaders=host, Signature=0"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .header("X-Amz-Target", format!("DynamoDB_20120810.{action}"))
        .body(body.to_string())
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

async fn moto_with_a_table() -> Moto {
    let moto = Moto::start().await.unwrap();
    let table = r#"{"TableName": "kept", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}"#;
    let created = dynamodb_request(&moto.endpoint(), "dynamodb", "CreateTable", table).await;
    assert_eq!(created.status(), 200, "{}", created.text().await.unwrap());
    moto
}

#[tokio::test]
async fn every_dynamodb_request_reaches_the_tables_whatever_its_signing_scope() {
    let moto = moto_with_a_table().await;
    for scope in ["dynamodb", "another-scope"] {
        let answer = dynamodb_request(&moto.endpoint(), scope, "ListTables", "{}").await;
        assert_eq!(answer.status(), 200, "{scope}");
        let body = answer.text().await.unwrap();
        assert!(body.contains("\"kept\""), "signed for {scope}: {body}");
    }
}

#[tokio::test]
async fn a_dead_dynamodb_process_fails_each_dynamodb_request_at_once() {
    let moto = moto_with_a_table().await;
    let children = child_pids(moto.pid());
    assert_eq!(children.len(), 1, "one DynamoDB process per server: {children:?}");
    let killed = std::process::Command::new("kill").args(["-9", &children[0].to_string()]).status().unwrap();
    assert!(killed.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let answer = dynamodb_request(&moto.endpoint(), "dynamodb", "ListTables", "{}").await;
        assert_eq!(answer.status(), 500);
        assert!(answer.text().await.unwrap().contains("DynamoDB process failed"));
    }
    // The rest of moto still answers.
    let queues = aws_sdk_sqs::Client::new(&moto.sdk_config().await).list_queues().send().await;
    assert!(queues.is_ok(), "{queues:?}");
}
