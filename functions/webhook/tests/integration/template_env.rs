//! The environment `template.yaml` gives the webhook function is one the configuration reads.

use tributary_testing::Template;
use webhook::config::ENVIRONMENT;

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
