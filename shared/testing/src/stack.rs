//! Provisions the resources `template.yaml` declares into moto and resolves each function's
//! environment from the same template, so tests, the local stack and the deployment agree.
//!
//! Supported: `AWS::DynamoDB::Table` (keys, GSIs, TTL), `AWS::S3::Bucket`, `AWS::SNS::Topic`,
//! `AWS::SQS::Queue` (redrive), `AWS::SNS::Subscription` (raw delivery, filter policy),
//! `AWS::SSM::Parameter`; intrinsics `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If` with
//! `Fn::Equals`/`Fn::Not`/`Fn::And`/`Fn::Or` conditions. Anything else that a provisioned resource
//! needs is an error, so a template change that the harness cannot honour fails loudly.

use super::HarnessError;
use super::moto::{ACCOUNT_ID, REGION};
use super::template::Template;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// What a provisioned resource is called, and how others refer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Physical {
    pub resource_type: String,
    pub name: String,
    pub arn: String,
    /// Queue URL, for `AWS::SQS::Queue`.
    pub url: Option<String>,
}

impl Physical {
    /// What `Ref` returns for this resource type.
    fn reference(&self) -> String {
        match self.resource_type.as_str() {
            "AWS::SNS::Topic" => self.arn.clone(),
            "AWS::SQS::Queue" => self.url.clone().unwrap_or_default(),
            _ => self.name.clone(),
        }
    }
}

pub struct Stack {
    pub prefix: String,
    pub template: Template,
    parameters: HashMap<String, String>,
    resources: HashMap<String, Physical>,
}

fn err(message: impl Into<String>) -> HarnessError {
    HarnessError::new(message)
}

fn as_str<'a>(value: &'a Value, what: &str) -> Result<&'a str, HarnessError> {
    value.as_str().ok_or_else(|| err(format!("{what}: expected a string, got {value}")))
}

fn sdk_error(what: &str, error: impl std::error::Error + 'static) -> HarnessError {
    err(format!("{what}: {}", tributary_aws::describe(&error)))
}

impl Stack {
    /// Provisions every supported resource of `template` under names prefixed by `prefix`.
    /// `parameters` override the template's parameter defaults.
    pub async fn provision(
        sdk: &SdkConfig,
        template: Template,
        prefix: &str,
        parameters: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        let mut values = HashMap::new();
        for name in template.parameter_names() {
            if let Some(default) = template.parameter_default(&name) {
                values.insert(name, default);
            }
        }
        for (name, value) in parameters {
            if template.document["Parameters"].get(*name).is_none() {
                return Err(err(format!("template.yaml has no parameter {name}")));
            }
            values.insert((*name).to_string(), (*value).to_string());
        }
        let mut stack = Self { prefix: prefix.to_string(), template, parameters: values, resources: HashMap::new() };
        stack.provision_tables(sdk).await?;
        stack.provision_buckets(sdk).await?;
        stack.provision_topics(sdk).await?;
        stack.provision_queues(sdk).await?;
        stack.provision_subscriptions(sdk).await?;
        stack.provision_parameters(sdk).await?;
        Ok(stack)
    }

    pub fn physical(&self, logical_id: &str) -> Result<&Physical, HarnessError> {
        self.resources.get(logical_id).ok_or_else(|| err(format!("{logical_id} was not provisioned")))
    }

    pub fn parameter(&self, name: &str) -> Result<&str, HarnessError> {
        self.parameters.get(name).map(String::as_str).ok_or_else(|| err(format!("parameter {name} has no value")))
    }

    /// The function's environment variables, resolved against this stack.
    pub fn function_env(&self, logical_id: &str) -> Result<HashMap<String, String>, HarnessError> {
        let mut env = HashMap::new();
        for (name, value) in self.template.function_environment(logical_id)? {
            match self.resolve(&value)? {
                Value::Null => {}
                Value::String(s) => {
                    env.insert(name, s);
                }
                Value::Number(n) => {
                    env.insert(name, n.to_string());
                }
                Value::Bool(b) => {
                    env.insert(name, b.to_string());
                }
                other => return Err(err(format!("{logical_id} {name}: not a scalar: {other}"))),
            }
        }
        Ok(env)
    }

    fn name_for(&self, logical_id: &str, properties: &Value, name_property: &str) -> Result<String, HarnessError> {
        match properties.get(name_property) {
            Some(value) => Ok(as_str(&self.resolve(value)?, name_property)?.to_string()),
            None => Ok(format!("{}-{logical_id}", self.prefix)),
        }
    }

    // ---- intrinsics ----

    fn reference(&self, name: &str) -> Result<Value, HarnessError> {
        let pseudo = match name {
            "AWS::Region" => Some(REGION.to_string()),
            "AWS::AccountId" => Some(ACCOUNT_ID.to_string()),
            "AWS::StackName" => Some(self.prefix.clone()),
            "AWS::Partition" => Some("aws".to_string()),
            "AWS::URLSuffix" => Some("amazonaws.com".to_string()),
            "AWS::NoValue" => return Ok(Value::Null),
            _ => None,
        };
        if let Some(value) = pseudo.or_else(|| self.parameters.get(name).cloned()) {
            return Ok(Value::String(value));
        }
        match self.resources.get(name) {
            Some(physical) => Ok(Value::String(physical.reference())),
            None => Err(err(format!("Ref {name}: not a parameter or a provisioned resource"))),
        }
    }

    fn attribute(&self, logical_id: &str, attribute: &str) -> Result<Value, HarnessError> {
        let physical = self.physical(logical_id)?;
        let value = match attribute {
            "Arn" | "TopicArn" => physical.arn.clone(),
            "TopicName" | "QueueName" => physical.name.clone(),
            "QueueUrl" => physical.url.clone().unwrap_or_default(),
            other => return Err(err(format!("Fn::GetAtt {logical_id}.{other} is not supported by the harness"))),
        };
        Ok(Value::String(value))
    }

    fn substitute(&self, text: &str, variables: &Map<String, Value>) -> Result<String, HarnessError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| err(format!("Fn::Sub {text}: unclosed ${{")))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else {
                let value = match variables.get(name) {
                    Some(value) => self.resolve(value)?,
                    None => match name.split_once('.') {
                        Some((resource, attribute)) if !name.starts_with("AWS::") => {
                            self.attribute(resource, attribute)?
                        }
                        _ => self.reference(name)?,
                    },
                };
                match value {
                    Value::String(s) => out.push_str(&s),
                    Value::Number(n) => out.push_str(&n.to_string()),
                    other => return Err(err(format!("Fn::Sub {text}: ${{{name}}} is {other}"))),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn condition(&self, name: &str) -> Result<bool, HarnessError> {
        let definition = self.template.document["Conditions"]
            .get(name)
            .ok_or_else(|| err(format!("condition {name} is not defined")))?;
        self.evaluate_condition(definition)
    }

    fn evaluate_condition(&self, value: &Value) -> Result<bool, HarnessError> {
        let object = value.as_object().filter(|o| o.len() == 1).ok_or_else(|| err(format!("bad condition {value}")))?;
        let (function, argument) = object.iter().next().ok_or_else(|| err("empty condition"))?;
        let items = || argument.as_array().cloned().unwrap_or_default();
        match function.as_str() {
            "Condition" => self.condition(as_str(argument, "Condition")?),
            "Fn::Equals" => {
                let items = items();
                if items.len() != 2 {
                    return Err(err("Fn::Equals takes two values"));
                }
                Ok(self.resolve(&items[0])? == self.resolve(&items[1])?)
            }
            "Fn::Not" => {
                Ok(!self.evaluate_condition(items().first().ok_or_else(|| err("Fn::Not takes one condition"))?)?)
            }
            "Fn::And" => items().iter().try_fold(true, |acc, c| Ok(acc & self.evaluate_condition(c)?)),
            "Fn::Or" => items().iter().try_fold(false, |acc, c| Ok(acc | self.evaluate_condition(c)?)),
            other => Err(err(format!("condition function {other} is not supported by the harness"))),
        }
    }

    /// Resolves every intrinsic in `value`; `AWS::NoValue` removes the key or item.
    pub fn resolve(&self, value: &Value) -> Result<Value, HarnessError> {
        match value {
            Value::Object(object) if object.len() == 1 => {
                let (key, argument) = object.iter().next().ok_or_else(|| err("empty object"))?;
                match key.as_str() {
                    "Ref" => self.reference(as_str(argument, "Ref")?),
                    "Fn::GetAtt" => {
                        let parts = argument.as_array().ok_or_else(|| err("Fn::GetAtt takes [Resource, Attribute]"))?;
                        match parts.as_slice() {
                            [resource, attribute] => {
                                self.attribute(as_str(resource, "Fn::GetAtt")?, as_str(attribute, "Fn::GetAtt")?)
                            }
                            _ => Err(err("Fn::GetAtt takes [Resource, Attribute]")),
                        }
                    }
                    "Fn::Sub" => match argument {
                        Value::String(text) => Ok(Value::String(self.substitute(text, &Map::new())?)),
                        Value::Array(parts) => match parts.as_slice() {
                            [Value::String(text), Value::Object(variables)] => {
                                Ok(Value::String(self.substitute(text, variables)?))
                            }
                            _ => Err(err("Fn::Sub takes a string or [string, variables]")),
                        },
                        _ => Err(err("Fn::Sub takes a string or [string, variables]")),
                    },
                    "Fn::Join" => {
                        let parts = argument.as_array().ok_or_else(|| err("Fn::Join takes [separator, list]"))?;
                        let (Some(separator), Some(list)) = (parts.first(), parts.get(1)) else {
                            return Err(err("Fn::Join takes [separator, list]"));
                        };
                        let list = self.resolve(list)?;
                        let items = list.as_array().ok_or_else(|| err("Fn::Join: the list must be a list"))?;
                        let strings: Vec<String> = items
                            .iter()
                            .map(|item| as_str(item, "Fn::Join item").map(str::to_string))
                            .collect::<Result<_, _>>()?;
                        Ok(Value::String(strings.join(as_str(separator, "Fn::Join separator")?)))
                    }
                    "Fn::If" => {
                        let parts = argument.as_array().ok_or_else(|| err("Fn::If takes [condition, then, else]"))?;
                        let [name, then, otherwise] = parts.as_slice() else {
                            return Err(err("Fn::If takes [condition, then, else]"));
                        };
                        let chosen = if self.condition(as_str(name, "Fn::If")?)? { then } else { otherwise };
                        self.resolve(chosen)
                    }
                    other if other.starts_with("Fn::") => Err(err(format!("{other} is not supported by the harness"))),
                    _ => self.resolve_object(object),
                }
            }
            Value::Object(object) => self.resolve_object(object),
            Value::Array(items) => {
                let mut resolved = Vec::new();
                for item in items {
                    match self.resolve(item)? {
                        Value::Null => {}
                        value => resolved.push(value),
                    }
                }
                Ok(Value::Array(resolved))
            }
            other => Ok(other.clone()),
        }
    }

    fn resolve_object(&self, object: &Map<String, Value>) -> Result<Value, HarnessError> {
        let mut resolved = Map::new();
        for (key, value) in object {
            match self.resolve(value)? {
                Value::Null => {}
                value => {
                    resolved.insert(key.clone(), value);
                }
            }
        }
        Ok(Value::Object(resolved))
    }

    fn declared(&self, resource_type: &str) -> Vec<(String, Value)> {
        self.template
            .resources_of_type(resource_type)
            .filter(|(_, resource)| match resource.get("Condition").and_then(Value::as_str) {
                Some(condition) => self.condition(condition).unwrap_or(false),
                None => true,
            })
            .map(|(id, resource)| (id.to_string(), resource["Properties"].clone()))
            .collect()
    }

    // ---- resources ----

    async fn provision_tables(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = aws_sdk_dynamodb::Client::new(sdk);
        for (logical_id, properties) in self.declared("AWS::DynamoDB::Table") {
            let properties = self.resolve(&properties)?;
            let name = self.name_for(&logical_id, &properties, "TableName")?;
            let key_schema = |value: &Value| -> Result<Vec<KeySchemaElement>, HarnessError> {
                value
                    .as_array()
                    .ok_or_else(|| err(format!("{logical_id}: KeySchema must be a list")))?
                    .iter()
                    .map(|k| {
                        KeySchemaElement::builder()
                            .attribute_name(as_str(&k["AttributeName"], "AttributeName")?)
                            .key_type(KeyType::from(as_str(&k["KeyType"], "KeyType")?))
                            .build()
                            .map_err(|e| sdk_error("key schema", e))
                    })
                    .collect()
            };
            let mut request = client
                .create_table()
                .table_name(&name)
                .set_key_schema(Some(key_schema(&properties["KeySchema"])?))
                .billing_mode(BillingMode::from(properties["BillingMode"].as_str().unwrap_or("PAY_PER_REQUEST")));
            for definition in properties["AttributeDefinitions"].as_array().into_iter().flatten() {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(as_str(&definition["AttributeName"], "AttributeName")?)
                        .attribute_type(ScalarAttributeType::from(as_str(
                            &definition["AttributeType"],
                            "AttributeType",
                        )?))
                        .build()
                        .map_err(|e| sdk_error("attribute definition", e))?,
                );
            }
            for index in properties["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
                let projection = &index["Projection"];
                let mut projection_builder = Projection::builder()
                    .projection_type(ProjectionType::from(projection["ProjectionType"].as_str().unwrap_or("ALL")));
                for attribute in projection["NonKeyAttributes"].as_array().into_iter().flatten() {
                    projection_builder = projection_builder.non_key_attributes(as_str(attribute, "NonKeyAttributes")?);
                }
                request = request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(as_str(&index["IndexName"], "IndexName")?)
                        .set_key_schema(Some(key_schema(&index["KeySchema"])?))
                        .projection(projection_builder.build())
                        .build()
                        .map_err(|e| sdk_error("global secondary index", e))?,
                );
            }
            request.send().await.map_err(|e| sdk_error(&format!("create table {name}"), e))?;
            if let Some(ttl) = properties.get("TimeToLiveSpecification") {
                client
                    .update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(as_str(&ttl["AttributeName"], "TimeToLiveSpecification.AttributeName")?)
                            .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                            .build()
                            .map_err(|e| sdk_error("ttl", e))?,
                    )
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("update ttl {name}"), e))?;
            }
            let arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}");
            self.resources
                .insert(logical_id, Physical { resource_type: "AWS::DynamoDB::Table".into(), name, arn, url: None });
        }
        Ok(())
    }

    async fn provision_buckets(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = tributary_aws::s3_client(sdk);
        for (logical_id, properties) in self.declared("AWS::S3::Bucket") {
            let properties = self.resolve(&properties)?;
            let name = self.name_for(&logical_id, &properties, "BucketName")?.to_lowercase();
            client
                .create_bucket()
                .bucket(&name)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("create bucket {name}"), e))?;
            let arn = format!("arn:aws:s3:::{name}");
            self.resources
                .insert(logical_id, Physical { resource_type: "AWS::S3::Bucket".into(), name, arn, url: None });
        }
        Ok(())
    }

    async fn provision_topics(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = aws_sdk_sns::Client::new(sdk);
        for (logical_id, properties) in self.declared("AWS::SNS::Topic") {
            let properties = self.resolve(&properties)?;
            let name = self.name_for(&logical_id, &properties, "TopicName")?;
            let output = client
                .create_topic()
                .name(&name)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("create topic {name}"), e))?;
            let arn = output.topic_arn.unwrap_or_default();
            self.resources
                .insert(logical_id, Physical { resource_type: "AWS::SNS::Topic".into(), name, arn, url: None });
        }
        Ok(())
    }

    async fn provision_queues(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = aws_sdk_sqs::Client::new(sdk);
        let queues = self.declared("AWS::SQS::Queue");
        // Create every queue first: a redrive policy names its dead-letter queue by ARN.
        for (logical_id, properties) in &queues {
            let name = self.name_for(logical_id, properties, "QueueName")?;
            let mut request = client.create_queue().queue_name(&name);
            if let Some(timeout) = properties.get("VisibilityTimeout") {
                let timeout = self.resolve(timeout)?;
                let text = timeout.as_u64().map(|n| n.to_string()).or_else(|| timeout.as_str().map(str::to_string));
                if let Some(text) = text {
                    request = request.attributes(QueueAttributeName::VisibilityTimeout, text);
                }
            }
            let output = request.send().await.map_err(|e| sdk_error(&format!("create queue {name}"), e))?;
            let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}");
            self.resources.insert(
                logical_id.clone(),
                Physical { resource_type: "AWS::SQS::Queue".into(), name, arn, url: output.queue_url },
            );
        }
        for (logical_id, properties) in &queues {
            let Some(redrive) = properties.get("RedrivePolicy") else { continue };
            let redrive = self.resolve(redrive)?;
            let url = self.physical(logical_id)?.url.clone().unwrap_or_default();
            client
                .set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .send()
                .await
                .map_err(|e| sdk_error(&format!("redrive policy of {logical_id}"), e))?;
        }
        Ok(())
    }

    async fn provision_subscriptions(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = aws_sdk_sns::Client::new(sdk);
        for (logical_id, properties) in self.declared("AWS::SNS::Subscription") {
            let properties = self.resolve(&properties)?;
            let mut request = client
                .subscribe()
                .topic_arn(as_str(&properties["TopicArn"], "TopicArn")?)
                .protocol(as_str(&properties["Protocol"], "Protocol")?)
                .endpoint(as_str(&properties["Endpoint"], "Endpoint")?)
                .return_subscription_arn(true);
            if let Some(raw) = properties.get("RawMessageDelivery") {
                let raw = raw.as_bool().map(|b| b.to_string()).or_else(|| raw.as_str().map(str::to_string));
                request = request.attributes("RawMessageDelivery", raw.unwrap_or_else(|| "false".into()));
            }
            if let Some(policy) = properties.get("FilterPolicy") {
                request = request.attributes("FilterPolicy", policy.to_string());
            }
            if let Some(scope) = properties.get("FilterPolicyScope").and_then(Value::as_str) {
                request = request.attributes("FilterPolicyScope", scope);
            }
            let output = request.send().await.map_err(|e| sdk_error(&format!("subscribe {logical_id}"), e))?;
            let arn = output.subscription_arn.unwrap_or_default();
            self.resources.insert(
                logical_id.clone(),
                Physical { resource_type: "AWS::SNS::Subscription".into(), name: logical_id, arn, url: None },
            );
        }
        Ok(())
    }

    async fn provision_parameters(&mut self, sdk: &SdkConfig) -> Result<(), HarnessError> {
        let client = aws_sdk_ssm::Client::new(sdk);
        for (logical_id, properties) in self.declared("AWS::SSM::Parameter") {
            let properties = self.resolve(&properties)?;
            let name = self.name_for(&logical_id, &properties, "Name")?;
            client
                .put_parameter()
                .name(&name)
                .value(as_str(&properties["Value"], "Value")?)
                .r#type(aws_sdk_ssm::types::ParameterType::from(properties["Type"].as_str().unwrap_or("String")))
                .overwrite(true)
                .send()
                .await
                .map_err(|e| sdk_error(&format!("put parameter {name}"), e))?;
            let arn = format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter{name}");
            self.resources
                .insert(logical_id, Physical { resource_type: "AWS::SSM::Parameter".into(), name, arn, url: None });
        }
        Ok(())
    }
}
