//! Secrets from SSM Parameter Store (`SecureString`), read at cold start and again once older than
//! their maximum age (`tributary_domain::secrets`).

use super::describe;
use aws_sdk_ssm::Client;
use std::collections::HashMap;
use tributary_domain::ports::{PortError, SecretSource};

/// `GetParameters` takes at most ten names per call.
const MAX_NAMES_PER_CALL: usize = 10;

#[derive(Clone)]
pub struct SsmSecrets {
    client: Client,
}

impl SsmSecrets {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl SecretSource for SsmSecrets {
    async fn get_secrets(&self, names: &[String]) -> Result<HashMap<String, String>, PortError> {
        let mut values = HashMap::new();
        for chunk in names.chunks(MAX_NAMES_PER_CALL) {
            let output = self
                .client
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| PortError::new("get parameters", describe(&e)))?;
            if let Some(missing) = output.invalid_parameters.filter(|m| !m.is_empty()) {
                return Err(PortError::new("get parameters", format!("parameters not found: {}", missing.join(", "))));
            }
            for parameter in output.parameters.unwrap_or_default() {
                if let (Some(name), Some(value)) = (parameter.name, parameter.value) {
                    values.insert(name, value);
                }
            }
        }
        Ok(values)
    }
}
