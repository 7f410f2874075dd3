//! The template's aggregator environments are ones the configuration reads.

use aggregator::config::ENVIRONMENT;
use tributary_testing::Template;

#[test]
fn template_sets_only_variables_the_aggregator_reads() {
    let template = Template::workspace().unwrap();
    for (function, required) in [
        ("AggregatorFunction", &["LAKE_BUCKET", "INGESTION_TABLE", "API_KEY_HASHES_PARAM"][..]),
        ("AggregatorJobsFunction", &["LAKE_BUCKET", "REPORTS_BUCKET", "REPORTS_TOPIC_ARN"][..]),
    ] {
        let declared = template.function_environment(function).unwrap();
        for name in declared.keys() {
            assert!(
                ENVIRONMENT.contains(&name.as_str()),
                "template.yaml sets {name} on {function}, which is never read"
            );
        }
        for name in required {
            assert!(declared.contains_key(*name), "template.yaml does not set {name} on {function}");
        }
    }
}
