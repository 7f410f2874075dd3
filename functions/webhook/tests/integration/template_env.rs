//! The environment `template.yaml` gives the webhook function is one the configuration reads.

use tributary_testing::Template;
use webhook::config::{ENVIRONMENT, REPLAY_ENVIRONMENT};

#[test]
fn template_sets_only_variables_the_receiver_reads() {
    let template = Template::workspace().unwrap();
    let declared = template.function_environment("WebhookFunction").unwrap();
    for name in declared.keys() {
        assert!(ENVIRONMENT.contains(&name.as_str()), "template.yaml sets {name}, which the receiver never reads");
    }
    for required in ["DEDUP_TABLE", "ARCHIVE_BUCKET", "EVENTS_TOPIC_ARN"] {
        assert!(declared.contains_key(required), "template.yaml does not set {required}");
    }
}

#[test]
fn template_sets_only_variables_the_replay_reads() {
    let template = Template::workspace().unwrap();
    let declared = template.function_environment("ReplayFunction").unwrap();
    for name in declared.keys() {
        assert!(REPLAY_ENVIRONMENT.contains(&name.as_str()), "template.yaml sets {name}, which the replay never reads");
    }
    // The replay normalises as the receiver does: the same senders.
    let receiver = template.function_environment("WebhookFunction").unwrap();
    let shared_variables =
        ["ARCHIVE_BUCKET", "EVENTS_TOPIC_ARN", "WEBHOOK_SOURCES", "MAKE_ID_FIELD", "MAKE_SUBJECT_FIELD"];
    for shared in shared_variables {
        assert_eq!(declared.get(shared), receiver.get(shared), "{shared}");
    }
}
