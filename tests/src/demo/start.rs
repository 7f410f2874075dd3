//! Starting the stack: moto provisioned from the template, the demo's sources, every function behind
//! the local Runtime API, the dispatcher; and stopping it.

use super::*;

impl Demo {
    /// Starts everything, with `instances` processes for each function Lambda invokes per event
    /// or request; on failure, stops what was started.
    pub async fn start(ports: Ports, instances: usize) -> Result<Self, String> {
        let clock = Clock(Instant::now());
        let expected = read_json(demo_data_dir().join("expected.json"))?;
        let api_key = secret("_api_key")?;

        let moto = match ports.moto {
            0 => Moto::start().await,
            port => Moto::start_on(port).await,
        }
        .map_err(|e| e.to_string())?;
        let moto_port = moto.port();
        clock.say(format!("moto on 127.0.0.1:{moto_port}"));
        let sdk = sdk_config_for(&moto.endpoint()).await;

        let (sources, sources_port) = start_sources(ports.sources)?;
        let sources_url = format!("http://127.0.0.1:{sources_port}");
        clock.say(format!("Matomo, Notion and CRM servers over tests/demo/ on {sources_url}"));

        let text = |key: &str| expected[key].as_str().map(str::to_string).ok_or(format!("expected.json: no {key}"));
        let page_size = expected["page_size"].to_string();
        let parameters = [
            ("WebhookSources", DEMO_SOURCES.to_string()),
            ("AttributeSources", "make,acme".to_string()),
            // The demo site sets userId only for signed-in visitors: their visits meet their record.
            ("MatomoUserIdAsEmail", "true".to_string()),
            ("IntegrationsParameter", INTEGRATIONS_PARAM.to_string()),
            ("MatomoUrl", format!("{sources_url}/matomo/")),
            ("MatomoSiteIds", "1,2".to_string()),
            ("MatomoStartDate", text("first_day")?),
            ("MatomoPageSize", page_size),
            ("NotionDatabaseIds", text("notion_database")?),
        ];
        let parameters: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let template = Template::workspace().map_err(|e| e.to_string())?;
        let stack =
            Stack::provision(&sdk, template, "tributary-local", &parameters).await.map_err(|e| e.to_string())?;
        put_demo_secrets(&sdk).await.map_err(|e| e.to_string())?;
        let integrations = json!({
            "allowed_hosts": ["127.0.0.1"],
            "integrations": [{
                "name": "demo-crm",
                "url": format!("{sources_url}/crm/contacts"),
                "on_fields": ["identity.*", "lead.statut", "billing.last_payment"],
                "body": {"id": "$customer_id", "version": "$version", "email": "identity.email",
                         "nom": "identity.nom", "statut": "lead.statut"},
                "auth": {"header": "Authorization", "secret_param": "/tributary/integrations/crm-token", "prefix": "Bearer "}
            }]
        })
        .to_string();
        put_secrets(&sdk, &[(INTEGRATIONS_PARAM, &integrations)]).await.map_err(|e| e.to_string())?;
        let resources = stack.template.resources().count();
        clock.say(format!("provisioned the {resources} resources of template.yaml in moto, demo secrets in SSM"));

        let mut demo = Self {
            moto: Some(moto),
            sources: Some(sources),
            functions: Vec::new(),
            dispatcher: None,
            gateway: None,
            ports: vec![moto_port, sources_port],
            sdk,
            stack,
            sources_url,
            expected,
            api_key,
            clock,
        };
        if let Err(error) = demo.start_functions(ports, instances).await {
            demo.stop();
            return Err(error);
        }
        Ok(demo)
    }

    pub(super) async fn start_functions(&mut self, ports: Ports, instances: usize) -> Result<(), String> {
        let specs = FunctionSpec::all(&self.stack.template)?;
        let binaries = binary_dir()?;
        let moto = self.moto.as_ref().map(Moto::endpoint).unwrap_or_default();
        let mut clients = HashMap::new();
        for (index, spec) in specs.iter().enumerate() {
            let port = if ports.functions == 0 { 0 } else { ports.functions + index as u16 };
            let mut env = function_env(&self.stack, &spec.logical_id, &moto)?;
            // The template points the puller at api.notion.com; the demo's Notion is local.
            if env.contains_key("NOTION_URL") {
                env.insert("NOTION_URL".into(), format!("{}/notion/", self.sources_url));
            }
            // The integrator refuses loopback targets unless told (SSRF guard); the CRM is local.
            if spec.logical_id == "IntegratorFunction" {
                env.insert("INTEGRATIONS_ALLOW_LOOPBACK".into(), "true".into());
            }
            let process =
                FunctionProcess::start(spec, port, spec.instances(instances), env, &state_dir(), &binaries).await?;
            clients.insert(spec.logical_id.clone(), process.client.clone());
            self.ports.extend(process.client.ports.iter().copied());
            self.functions.push(process);
        }
        // Every bootstrap runs its init at once (as a cold start does); a function that cannot
        // start fails the demo here, with its log, rather than at its first invocation.
        for function in &self.functions {
            function.wait_until_ready(Duration::from_secs(60)).await?;
        }
        self.clock.say(format!(
            "{} functions started from {} (each its bootstrap behind a local Runtime API): {}",
            self.functions.len(),
            binaries.display(),
            self.functions.iter().map(describe_ports).collect::<Vec<_>>().join(" ")
        ));
        let targets = self.functions.iter().map(|f| (f.spec.logical_id.clone(), f.client.clone())).collect();
        let gateway = Gateway::start(crate::gateway::routes(&self.stack.template)?, targets, ports.gateway).await?;
        self.clock.say(format!(
            "HTTP API on {url}: the webhooks, /api/v1, and the console at {url}/console",
            url = gateway.url()
        ));
        self.ports.push(gateway.port);
        self.gateway = Some(gateway);
        let dispatcher = Dispatcher::start(&self.sdk, &self.stack, clients, Duration::from_secs(1)).await?;
        self.clock.say("dispatcher: SNS → processor, integrator; SNS → SQS → lake-writer; schedules on demand");
        self.dispatcher = Some(dispatcher);
        Ok(())
    }

    /// Stops every process the demo started and checks that no port it used is still bound.
    pub fn stop(&mut self) -> Vec<u16> {
        if let Some(dispatcher) = self.dispatcher.take() {
            dispatcher.stop();
        }
        drop(self.gateway.take());
        for function in self.functions.drain(..) {
            function.stop();
        }
        if let Some(mut sources) = self.sources.take() {
            let _ = sources.kill();
            let _ = sources.wait();
        }
        drop(self.moto.take());
        std::thread::sleep(Duration::from_millis(300));
        self.ports.iter().copied().filter(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_err()).collect()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `scripts/demo-sources.py`; returns it and the port it listens on.
pub(super) fn start_sources(port: u16) -> Result<(Child, u16), String> {
    let root = workspace_root();
    let mut child = Command::new(project_python())
        .arg(root.join("scripts/demo-sources.py"))
        .args(["--data", &demo_data_dir().to_string_lossy(), "--port", &port.to_string()])
        .args(["--matomo-token", &secret("/tributary/matomo-token")?])
        .args(["--notion-token", &secret("/tributary/notion-token")?])
        .args(["--crm-token", &secret("/tributary/integrations/crm-token")?])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting scripts/demo-sources.py: {e}"))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    match line.trim().strip_prefix("listening on ").and_then(|p| p.parse().ok()) {
        Some(port) => Ok((child, port)),
        None => {
            let _ = child.kill();
            Err(format!("scripts/demo-sources.py did not start: {line}"))
        }
    }
}

/// `name:port`, and `name:port+port…` for a function run as several processes.
fn describe_ports(function: &FunctionProcess) -> String {
    let ports: Vec<String> = function.client.ports.iter().map(u16::to_string).collect();
    format!("{}:{}", function.spec.binary, ports.join("+"))
}
