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

/// One answer read off a kept connection: status, lower-cased headers, body (of its length, or
/// chunked). A server that lost the request fails the test rather than hanging it.
async fn read_answer(
    connection: &mut tokio::io::BufReader<tokio::net::TcpStream>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(20), read_whole_answer(connection))
        .await
        .expect("no answer within 20 s: the server lost the request")
}

async fn read_whole_answer(
    connection: &mut tokio::io::BufReader<tokio::net::TcpStream>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut status_line = String::new();
    connection.read_line(&mut status_line).await.unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "the connection gave {status_line:?}");
    let status = status_line[9..12].parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut body = Vec::new();
    if headers.contains(&("transfer-encoding".into(), "chunked".into())) {
        loop {
            let mut size = String::new();
            connection.read_line(&mut size).await.unwrap();
            let size = usize::from_str_radix(size.trim_end(), 16).unwrap();
            let mut chunk = vec![0; size + 2]; // and its CRLF
            connection.read_exact(&mut chunk).await.unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let length = headers.iter().find(|(name, _)| name == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        body.resize(length, 0);
        connection.read_exact(&mut body).await.unwrap();
    }
    (status, headers, body)
}

#[tokio::test]
async fn one_connection_carries_request_after_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let moto = moto_with_a_table().await;
    let address = moto.endpoint().trim_start_matches("http://").to_string();
    let mut connection = tokio::io::BufReader::new(tokio::net::TcpStream::connect(&address).await.unwrap());
    let signed = |scope: &str| {
        format!(
            "Host: {address}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{scope}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        )
    };
    let dynamodb = |action: &str| {
        format!(
            "POST / HTTP/1.1\r\n{}Content-Type: application/x-amz-json-1.0\r\nX-Amz-Target: DynamoDB_20120810.{action}\r\n",
            signed("dynamodb")
        )
    };
    let object = "x".repeat(70_000);
    // Each request is written whole before its answer is read, as an SDK client does on a pooled
    // connection: a body of a length, a chunked body, an answer of an error, an S3 object both ways.
    let requests: Vec<(String, u16, &str)> = vec![
        (format!("{}Content-Length: 2\r\n\r\n{{}}", dynamodb("ListTables")), 200, "\"kept\""),
        (
            format!("{}Transfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n1\r\n}}\r\n0\r\n\r\n", dynamodb("ListTables")),
            200,
            "\"kept\"",
        ),
        (format!("{}Content-Length: 9\r\n\r\n{{\"Key\": 1", dynamodb("GetItem")), 500, ""),
        (format!("PUT /kept-bucket HTTP/1.1\r\n{}Content-Length: 0\r\n\r\n", signed("s3")), 200, ""),
        (
            format!(
                "PUT /kept-bucket/object HTTP/1.1\r\n{}Content-Length: {}\r\n\r\n{object}",
                signed("s3"),
                object.len()
            ),
            200,
            "",
        ),
        (format!("GET /kept-bucket/object HTTP/1.1\r\n{}\r\n", signed("s3")), 200, object.as_str()),
        (format!("{}Content-Length: 2\r\n\r\n{{}}", dynamodb("ListTables")), 200, "\"kept\""),
    ];
    for (number, (request, status, contains)) in requests.iter().enumerate() {
        connection.get_mut().write_all(request.as_bytes()).await.unwrap();
        let (answered, headers, body) = read_answer(&mut connection).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(answered, *status, "request {number}: {body}");
        assert!(body.contains(contains), "request {number}: {body}");
        assert!(!headers.contains(&("connection".into(), "close".into())), "request {number} closed the connection");
    }
    // A client that asks to close has it closed after the answer.
    let last = format!("{}Connection: close\r\nContent-Length: 2\r\n\r\n{{}}", dynamodb("ListTables"));
    connection.get_mut().write_all(last.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut connection).await.0, 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "the connection stayed open or held more: {closed:?} {rest:?}");
}

#[tokio::test]
async fn a_request_that_cannot_be_read_ends_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let moto = Moto::start().await.unwrap();
    let address = moto.endpoint().trim_start_matches("http://").to_string();
    // Requests http.server refuses (answered, then closed: a header over its 64 KiB line limit,
    // more than its 100 headers, a version it does not speak) and bodies whose end cannot be known
    // (closed: a length that is not one, two lengths): none may leave the connection open in the
    // middle of a request.
    let many_headers: String = (0..120).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    for request in [
        format!("GET / HTTP/1.1\r\nHost: {address}\r\nX-Long: {}\r\n\r\n", "a".repeat(70_000)),
        format!("GET / HTTP/1.1\r\nHost: {address}\r\n{many_headers}\r\n"),
        "GET / HTTP/2.0\r\n\r\n".to_string(),
        format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: -5\r\n\r\n{{}}"),
        format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: two\r\n\r\n{{}}"),
        format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{{}}"),
        // An HTTP/1.0 client is answered and the connection closed, as it expects.
        format!("GET /_tributary/requests HTTP/1.0\r\nHost: {address}\r\nConnection: keep-alive\r\n\r\n"),
    ] {
        let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
        connection.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // Ended: closed (or reset, when the server closes with bytes of the request still unread).
        let ended = tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut answer)).await;
        assert!(ended.is_ok(), "{request:?} left the connection open: {:?}", String::from_utf8_lossy(&answer));
    }
}

#[tokio::test]
async fn header_lines_are_read_as_http_server_reads_them() {
    use tokio::io::AsyncWriteExt;
    let moto = moto_with_a_table().await;
    let address = moto.endpoint().trim_start_matches("http://").to_string();
    let mut connection = tokio::io::BufReader::new(tokio::net::TcpStream::connect(&address).await.unwrap());
    let signed = format!(
        "Host: {address}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n"
    );
    // The server reads simple `Name: value` lines itself and hands any other header block to the
    // email parser (scripts/moto-server.py): both must give moto the same headers.
    for (case, headers) in [
        ("blanks before a value", "X-Amz-Target:\t  DynamoDB_20120810.ListTables\r\n"),
        ("no blank after the colon, a lower-case name", "x-amz-target:DynamoDB_20120810.ListTables\r\n"),
        ("a folded line before it", "X-Folded: one\r\n  two\r\nX-Amz-Target: DynamoDB_20120810.ListTables\r\n"),
        ("bare line feeds", "X-Amz-Target: DynamoDB_20120810.ListTables\n"),
    ] {
        let request = format!("POST / HTTP/1.1\r\n{signed}{headers}\r\n{{}}");
        connection.get_mut().write_all(request.as_bytes()).await.unwrap();
        let (status, _, body) = read_answer(&mut connection).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "{case}: {body}");
        assert!(body.contains("\"kept\""), "{case}: {body}");
    }
}

/// The server's header reader (`headers_parsed_without_email_parser` in scripts/moto-server.py)
/// against the standard library's, in moto's Python: the same message for every header block, and
/// the email parser left out for simple ones.
#[test]
fn the_servers_header_reader_makes_the_standard_librarys_message() {
    const CHECK: &str = r#"
import email.parser, http.client, importlib.util, io, sys
spec = importlib.util.spec_from_file_location("moto_server", sys.argv[1])
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
standard = http.client.parse_headers
assert standard is not server.headers_parsed_without_email_parser
parsed_by_email = []
class CountingParser(email.parser.Parser):
    def parsestr(self, text, headersonly=False):
        parsed_by_email.append(text)
        return super().parsestr(text, headersonly)
server.email.parser.Parser = CountingParser
simple = [b"Host: x\r\nContent-Length: 5\r\nX-Empty:\r\nX-Blank:   \r\nX-Spaced: \t v  \r\n\r\nBODY",
          b"A: b\r\nA: c\r\na:d\r\n\r\n", b"A: 1\nB:2\n\n", b"A: caf\xe9 \x85\x0b\x0c\r\n\r\n", b"A: x:y\r\n\r\n",
          b"From: me\r\n\r\n", b"\r\n", b"", b"Content-Type: application/json\r\n\r\n"]
other = [b"A: b", b"A:b\r\n continued\r\n\r\n", b"NoColon\r\n\r\n", b"From me\r\n\r\n", b":x\r\n\r\n",
         b"a b: c\r\n\r\n", b"A: b\rC: d\r\n\r\n", b"Content-Type: multipart/form-data; boundary=x\r\n\r\n",
         b"content-type:  Multipart/mixed\r\n\r\n", b"Content-Type: message/rfc822\r\n\r\n",
         b"Content-Type: \x0bmultipart/mixed\r\n\r\n", b"Content-Type:\xa0message/rfc822\r\n\r\n"]
def shape(message, fp=None):
    payload = message.get_payload()
    if isinstance(payload, list):  # a message/ type's sub-message
        payload = [shape(part) for part in payload]
    return (type(message), message._headers, payload, [type(d) for d in message.defects], message.preamble,
            message.epilogue, message._default_type, message._unixfrom, message._charset, fp and fp.tell())
for block in simple + other:
    ours_fp, standard_fp = io.BytesIO(block), io.BytesIO(block)
    before = len(parsed_by_email)
    ours = shape(server.headers_parsed_without_email_parser(ours_fp), ours_fp)
    took_email = len(parsed_by_email) > before
    expected = shape(standard(standard_fp), standard_fp)
    assert ours == expected, (block, ours, expected)
    assert took_email == (block in other), (block, "email parser used" if took_email else "read directly")
print("checked", len(simple) + len(other))
"#;
    let script = tributary_testing::workspace_root().join("scripts/moto-server.py");
    let output = std::process::Command::new(tributary_testing::project_python())
        .args(["-c", CHECK])
        .arg(&script)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("checked 21"), "{stdout}{stderr}");
}
