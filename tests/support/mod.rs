//! A real server on 127.0.0.1:0 over a temporary data directory, and tonic clients with
//! bearer tokens, for the API tests.
#![allow(dead_code)]

use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::Request;
use voucher_ledger::api::auth::{token_hash, Role, TokenEntry};
use voucher_ledger::api::proto::{
    ledger_service_client::LedgerServiceClient, programme_service_client::ProgrammeServiceClient,
    redemption_service_client::RedemptionServiceClient,
    registry_service_client::RegistryServiceClient, voucher_service_client::VoucherServiceClient,
};
use voucher_ledger::api::server::{run, ServeSettings, ServerConfig, ServerSection};

pub const BUREAU: &str = "test-bureau";
pub const AUDITOR: &str = "test-auditor";
pub const CENTER_1: &str = "test-center-1";
pub const CENTER_2: &str = "test-center-2";
pub const ENTERPRISE_1: &str = "test-enterprise-1";
pub const ENTERPRISE_2: &str = "test-enterprise-2";

pub fn center_code(index: usize) -> String {
    voucher_ledger::tooling::demo::center_uscc(index)
        .expect("uscc")
        .to_string()
}

pub fn enterprise_code(index: usize) -> String {
    voucher_ledger::tooling::demo::enterprise_uscc(index)
        .expect("uscc")
        .to_string()
}

pub fn test_config(server: ServerSection) -> ServerConfig {
    let entry = |principal: String, role, token: &str| TokenEntry {
        principal,
        role,
        token_sm3: token_hash(token),
    };
    ServerConfig {
        server,
        tls: None,
        tokens: vec![
            entry("bureau".into(), Role::Bureau, BUREAU),
            entry("auditor".into(), Role::Auditor, AUDITOR),
            entry(center_code(1), Role::Center, CENTER_1),
            entry(center_code(2), Role::Center, CENTER_2),
            entry(enterprise_code(1), Role::Enterprise, ENTERPRISE_1),
            entry(enterprise_code(2), Role::Enterprise, ENTERPRISE_2),
        ],
    }
}

pub struct TestServer {
    pub address: String,
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    pub directory: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerSection::default()).await
    }

    pub async fn start_with(section: ServerSection) -> TestServer {
        let directory = tempfile::tempdir().expect("tempdir");
        Self::start_in(directory, section).await
    }

    pub async fn start_in(directory: tempfile::TempDir, section: ServerSection) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (sender, receiver) = oneshot::channel::<()>();
        let settings = ServeSettings {
            data_dir: directory.path().to_path_buf(),
            config: test_config(section),
            sync: true,
            http_listener: None,
        };
        let task = tokio::spawn(run(listener, settings, async move {
            let _ = receiver.await;
        }));
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        TestServer {
            address,
            channel,
            shutdown: Some(sender),
            task: Some(task),
            directory,
        }
    }

    /// Graceful shutdown; returns the data directory for reopening.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("shutdown in time");
            result.expect("join").expect("server ran cleanly");
        }
        let placeholder = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.directory, placeholder)
    }

    pub fn programme(&self) -> ProgrammeServiceClient<Channel> {
        ProgrammeServiceClient::new(self.channel.clone())
    }
    pub fn registry(&self) -> RegistryServiceClient<Channel> {
        RegistryServiceClient::new(self.channel.clone())
    }
    pub fn vouchers(&self) -> VoucherServiceClient<Channel> {
        VoucherServiceClient::new(self.channel.clone())
    }
    pub fn redemption(&self) -> RedemptionServiceClient<Channel> {
        RedemptionServiceClient::new(self.channel.clone())
    }
    pub fn ledger(&self) -> LedgerServiceClient<Channel> {
        LedgerServiceClient::new(self.channel.clone())
    }
}

impl TestServer {
    /// The log's last sequence, as an auditor reads it.
    pub async fn log_end(&self) -> u64 {
        use voucher_ledger::api::proto::ReadEventsRequest;
        self.ledger()
            .read_events(authed(
                AUDITOR,
                ReadEventsRequest {
                    from_sequence: 1,
                    limit: 1,
                },
            ))
            .await
            .expect("read")
            .into_inner()
            .last_sequence
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

// ---------------------------------------------------------------- settlement (issue 8)

use voucher_ledger::api::proto::settlement_service_client::SettlementServiceClient;

impl TestServer {
    pub fn settlement(&self) -> SettlementServiceClient<Channel> {
        SettlementServiceClient::new(self.channel.clone())
    }
}

/// A request carrying `authorization: Bearer <token>` and `x-request-id: <request_id>`.
pub fn authed_with_id<T>(token: &str, request_id: &str, message: T) -> Request<T> {
    let mut request = authed(token, message);
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().expect("header"));
    request
}

/// Today's date (UTC) on the wall clock, which is the server's clock too.
pub fn today() -> voucher_ledger::domain::Date {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    voucher_ledger::domain::Timestamp(elapsed.as_millis() as i64).date()
}

/// The stable rejection name a status carries in its `google.rpc.ErrorInfo`, if any.
pub fn error_reason(status: &tonic::Status) -> Option<String> {
    tonic_types::StatusExt::get_error_details(status)
        .error_info()
        .map(|info| info.reason.clone())
}

// ---------------------------------------------------------------- exports (issue 10)

use voucher_ledger::api::proto::export_service_client::ExportServiceClient;

impl TestServer {
    pub fn export(&self) -> ExportServiceClient<Channel> {
        ExportServiceClient::new(self.channel.clone())
    }
}

/// Registers center `index` as `name` in `tier` (listed by the planning layout), as
/// the bureau.
pub async fn register_center(
    channel: &Channel,
    index: usize,
    name: &str,
    tier: voucher_ledger::api::proto::FacilityTier,
) {
    use voucher_ledger::api::proto::{ListingBasis, RegisterCenterRequest};
    RegistryServiceClient::new(channel.clone())
        .register_center(authed(
            BUREAU,
            RegisterCenterRequest {
                uscc: center_code(index),
                name: name.into(),
                tier: tier as i32,
                listing_basis: ListingBasis::PlanningLayout as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("center");
}

/// Registers the enterprises of `indices` ("Enterprise {index}"), as the bureau.
pub async fn register_enterprises(channel: &Channel, indices: impl IntoIterator<Item = usize>) {
    use voucher_ledger::api::proto::RegisterEnterpriseRequest;
    let mut registry = RegistryServiceClient::new(channel.clone());
    for index in indices {
        registry
            .register_enterprise(authed(
                BUREAU,
                RegisterEnterpriseRequest {
                    uscc: enterprise_code(index),
                    name: format!("Enterprise {index}"),
                },
            ))
            .await
            .expect("enterprise");
    }
}

/// The seeding several server tests share before they post invoices: center 1
/// (domestic) as `center_name` and enterprises 1..=`enterprises`, as the bureau.
pub async fn register_center_and_enterprises(
    channel: &Channel,
    center_name: &str,
    enterprises: usize,
) {
    use voucher_ledger::api::proto::FacilityTier;
    register_center(channel, 1, center_name, FacilityTier::Domestic).await;
    register_enterprises(channel, 1..=enterprises).await;
}

/// The standard programme's policy (`config/policy-2026.toml`), as the bureau publishes
/// it over the API.
pub fn standard_policy_request() -> voucher_ledger::api::proto::PublishPolicyRequest {
    use voucher_ledger::api::proto::{publish_policy_request, PublishPolicyRequest};
    PublishPolicyRequest {
        source: Some(publish_policy_request::Source::PolicyToml(
            std::fs::read_to_string("config/policy-2026.toml").expect("policy file"),
        )),
    }
}

/// An invoice of center `center` on `voucher_id`, issued 2026-06-30, with a delivery
/// proof named after its number.
pub fn center_invoice(
    center: usize,
    voucher_id: &str,
    number: &str,
    amount: &str,
) -> voucher_ledger::api::proto::Invoice {
    voucher_ledger::api::proto::Invoice {
        center: center_code(center),
        voucher_id: voucher_id.to_string(),
        invoice_number: number.to_string(),
        amount: amount.to_string(),
        issue_date: "2026-06-30".into(),
        delivery_proof: format!("acceptance/{number}"),
        invoice_code: String::new(),
        payment_proof: String::new(),
    }
}

/// Registers center 1 (domestic tier) and enterprise 1, then approves one 2026 voucher
/// between them for `contract_number`, over `channel` as the bureau; returns its id.
pub async fn register_pair_and_approve(
    channel: &Channel,
    contract_number: &str,
    contract_fee: &str,
    requested: &str,
) -> String {
    use voucher_ledger::api::proto::ApproveVoucherRequest;
    register_center_and_enterprises(channel, "Center 1", 1).await;
    VoucherServiceClient::new(channel.clone())
        .approve_voucher(authed(
            BUREAU,
            ApproveVoucherRequest {
                voucher_id: String::new(),
                year: 2026,
                enterprise: enterprise_code(1),
                center: center_code(1),
                contract_number: contract_number.into(),
                contract_fee: contract_fee.into(),
                term_start: "2026-01-01".into(),
                term_end: "2026-12-31".into(),
                requested: requested.into(),
                ..Default::default()
            },
        ))
        .await
        .expect("voucher")
        .into_inner()
        .voucher
        .expect("voucher body")
        .voucher_id
}

// ----------------------------------------------------------- the server as a process

/// `voucher-ledger serve` as a child process (no fsync, no report page), so that what
/// the process itself holds (memory, flags) can be read from /proc.
pub struct ServerProcess {
    child: std::process::Child,
    pub address: String,
    _directory: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the server with `server_section` under `[server]` and tokens for the
    /// bureau, center 1 and enterprise 1; returns once it printed its address.
    pub fn start(server_section: &str) -> ServerProcess {
        use std::io::BufRead;
        let directory = tempfile::tempdir().expect("tempdir");
        let mut config = format!("[server]\n{server_section}\n");
        for (principal, role, token) in [
            ("bureau".to_string(), "bureau", BUREAU),
            (center_code(1), "center", CENTER_1),
            (enterprise_code(1), "enterprise", ENTERPRISE_1),
        ] {
            config.push_str(&format!(
                "[[tokens]]\nprincipal = \"{principal}\"\nrole = \"{role}\"\ntoken_sm3 = \"{}\"\n",
                token_hash(token)
            ));
        }
        let config_path = directory.path().join("server.toml");
        std::fs::write(&config_path, config).expect("config");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_voucher-ledger"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "",
                "--no-sync",
                "--data-dir",
            ])
            .arg(directory.path().join("data"))
            .arg("--config")
            .arg(&config_path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the server");
        let stdout = child.stdout.take().expect("stdout");
        let address =
            voucher_ledger::tooling::listening_address(std::io::BufReader::new(stdout).lines())
                .expect("the server printed its address");
        ServerProcess {
            child,
            address,
            _directory: directory,
        }
    }

    fn proc_status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status reads")
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = self.proc_status();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .expect("memory field")
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The process's `THP_enabled` flag (Linux 5.0 and later): 0 once it turned
    /// transparent huge pages off for itself.
    pub fn transparent_huge_pages_flag(&self) -> u32 {
        transparent_huge_pages_flag_in(&self.proc_status())
    }

    /// Each of the server's threads by name, with its nice value (`/proc/PID/task/*/stat`,
    /// field 19).
    pub fn niceness_of_threads(&self) -> Vec<(String, i32)> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut found = Vec::new();
        for task in std::fs::read_dir(&tasks).expect("the server's tasks") {
            let Ok(stat) = std::fs::read_to_string(task.expect("task").path().join("stat")) else {
                continue; // the thread ended between the listing and the read
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                panic!("a task's stat has its name in parentheses: {stat}");
            };
            let nice = voucher_ledger::ledger::priority::niceness_in_stat(&stat)
                .expect("a task's stat has its nice value");
            found.push((stat[open + 1..close].to_string(), nice));
        }
        found
    }

    pub async fn wait_serving(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(channel) = Channel::from_shared(format!("http://{}", self.address))
                .expect("uri")
                .connect()
                .await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                if health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server is not serving"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `THP_enabled` from a `/proc/PID/status` text.
pub fn transparent_huge_pages_flag_in(status: &str) -> u32 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("/proc status has THP_enabled (Linux 5.0 and later)")
}
