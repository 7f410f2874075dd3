//! The template's puller environment is one the configuration reads, and the sample scheduled
//! events of `events/` are job requests.

use puller::config::ENVIRONMENT;
use puller::handler::JobRequest;
use tributary_testing::{Template, sample_event};

#[test]
fn template_sets_only_variables_the_puller_reads() {
    let template = Template::workspace().unwrap();
    let declared = template.function_environment("PullerFunction").unwrap();
    for name in declared.keys() {
        assert!(ENVIRONMENT.contains(&name.as_str()), "template.yaml sets {name}, which the puller never reads");
    }
    for required in ["INGESTION_TABLE", "EVENTS_TOPIC_ARN", "LAKE_BUCKET"] {
        assert!(declared.contains_key(required), "template.yaml does not set {required}");
    }
}

#[test]
fn the_sample_schedules_are_job_requests() {
    let matomo: serde_json::Value =
        serde_json::from_str(&sample_event("puller-scheduled-matomo.json").unwrap()).unwrap();
    assert_eq!(JobRequest::parse(&matomo).unwrap(), JobRequest::Matomo { sites: Some(vec![1]) });
    let notion: serde_json::Value =
        serde_json::from_str(&sample_event("puller-scheduled-notion.json").unwrap()).unwrap();
    assert_eq!(JobRequest::parse(&notion).unwrap(), JobRequest::Notion { databases: None });
    // What the template's schedules pass (their `Input`) is a request as well.
    let template = std::fs::read_to_string(tributary_testing::workspace_root().join("template.yaml")).unwrap();
    for input in [r#"{"job":"matomo"}"#, r#"{"job":"notion"}"#] {
        assert!(template.contains(&format!("Input: '{input}'")), "{input}");
        JobRequest::parse(&serde_json::from_str(input).unwrap()).unwrap();
    }
}
