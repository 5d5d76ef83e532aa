//! The experiment document, as the YAML is written. Every struct denies
//! unknown keys; defaults are documented on the field.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use simian_core::{Dur, Pick};

/// One experiment: what steady state looks like, what to break, and what stops it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Format version of this document. Only `1` exists.
    pub version: u32,
    /// Short name, used in reports and JUnit.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The system's normal behaviour: probes and the hypothesis over their metrics.
    pub steady_state: SteadyState,
    /// Conditions that abort the run at once (every fault reverted), e.g.
    /// `users.success_ratio < 0.9`. Checked before and during the method.
    #[serde(default)]
    pub stop_when: Vec<String>,
    /// Ordered steps: `inject`, `wait`, `revert`, `parallel`.
    pub method: Vec<Step>,
    #[serde(default)]
    pub guards: Guards,
    /// Proxies the run itself starts (in process, before the probes) and stops at the end,
    /// e.g. to put a dependency behind a proxy for one experiment. Their listen addresses are
    /// `${proxies.NAME}` and their API `${proxies.api}`; a `latency` fault without `api` uses them.
    #[serde(default)]
    pub proxies: BTreeMap<String, RunProxy>,
}

/// A proxy started by the run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunProxy {
    /// `host:port` to listen on. Default: 127.0.0.1 and a free port.
    #[serde(default)]
    pub listen: Option<String>,
    /// `host:port` it forwards to.
    pub upstream: String,
    /// `tcp` (default: bytes pass through, toxics per chunk) or `http` (toxics per request).
    #[serde(default)]
    pub mode: ProxyMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    #[default]
    Tcp,
    Http,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    /// Named probes; their metrics are named `PROBE.METRIC`.
    pub probes: BTreeMap<String, ProbeSpec>,
    /// Assertions that must hold before, during and after the method, e.g.
    /// `users.p99 < 250ms` or `users.rate >= 90% of baseline`.
    pub hypothesis: Vec<String>,
    /// Assertions judged only once every fault is reverted (over the `after` window), on
    /// top of the hypothesis: what recovery must restore, e.g. `repl.queued == 0`.
    #[serde(default)]
    pub recovery: Vec<String>,
    /// How long to measure before the method; this is also the baseline. Default 5s.
    #[serde(default = "default_phase")]
    pub before: Dur,
    /// How long to measure after every fault is reverted. Default 5s.
    #[serde(default = "default_phase")]
    pub after: Dur,
    /// Sliding window the hypothesis is judged over during the method. Default 5s.
    #[serde(default = "default_phase")]
    pub window: Dur,
    /// Pause after reverting before the `after` measurement starts. Default 0s.
    #[serde(default)]
    pub settle: Dur,
}

fn default_phase() -> Dur {
    Dur::from_secs(5)
}

/// A probe, keyed by kind.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProbeSpec {
    /// Open-loop HTTP load at a fixed rate.
    Http(HttpProbe),
    /// TCP connects at an interval.
    Tcp(TcpProbe),
    /// A shell command at an interval; exit 0 is success, a number on stdout is `value`.
    Command(CommandProbe),
    /// A PromQL query at an interval; its number is `value`.
    Prometheus(PrometheusProbe),
    /// Records written through one region and read back through another: `visible`,
    /// `queued`, `lost`, and convergence time as the latency percentiles.
    Replication(ReplicationProbe),
}

impl ProbeSpec {
    /// The key of this kind in YAML: `http`, `tcp`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Http(_) => "http",
            ProbeSpec::Tcp(_) => "tcp",
            ProbeSpec::Command(_) => "command",
            ProbeSpec::Prometheus(_) => "prometheus",
            ProbeSpec::Replication(_) => "replication",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `http://` URL (HTTPS is not supported by the probe).
    pub url: String,
    /// Requests per second, scheduled on the clock whatever the replies do. Default 50.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// A request not answered within this is a failure. Default 2s.
    #[serde(default = "default_http_timeout")]
    pub timeout: Dur,
    /// Statuses that count as success. Default: 200-399.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests in flight at most; a request due beyond it counts as a failure. Default 1000.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_rate() -> f64 {
    50.0
}
fn default_method() -> String {
    "GET".into()
}
fn default_http_timeout() -> Dur {
    Dur::from_secs(2)
}
fn default_max_in_flight() -> usize {
    1000
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// `host:port`.
    pub address: String,
    /// Default 1s.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Default 1s.
    #[serde(default = "default_interval")]
    pub timeout: Dur,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandProbe {
    /// Run with `sh -c`.
    pub run: String,
    /// Default 1s.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Default 5s.
    #[serde(default = "default_command_timeout")]
    pub timeout: Dur,
}

/// A PromQL query against a Prometheus server's HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusProbe {
    /// The server's base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
    /// PromQL that yields one number: a scalar, or a vector of exactly one series.
    pub query: String,
    /// Evaluate the query over a range ending now and aggregate its points, instead of
    /// one instant query.
    #[serde(default)]
    pub range: Option<PromRange>,
    /// What a result with no series means: `fail` (default) or `zero`.
    #[serde(default)]
    pub empty: EmptyResult,
    /// Default 1s.
    #[serde(default = "default_interval")]
    pub interval: Dur,
    /// Default 5s.
    #[serde(default = "default_command_timeout")]
    pub timeout: Dur,
}

/// A range query (`/api/v1/query_range`) aggregated to one number.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromRange {
    /// How far back from now, e.g. `30s`.
    pub over: Dur,
    /// Resolution of the range. Default: `over` / 30, at least 1s.
    #[serde(default)]
    pub step: Option<Dur>,
    /// How the points become one number.
    pub aggregate: Aggregate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Min,
    Max,
    Mean,
    Sum,
    Last,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmptyResult {
    /// No series: the observation fails.
    #[default]
    Fail,
    /// No series reads as 0 (e.g. a counter of errors that never happened).
    Zero,
}

/// Records written through one region's API and read through another's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationProbe {
    /// URL a record is `PUT` to, with `{key}`: e.g. `${lab.us-east.store}/kv/{key}`.
    pub write: String,
    /// URL a record is read back from with `GET`, with `{key}`: e.g.
    /// `${lab.us-west.store}/kv/{key}`. Visible means 200 and the body written.
    pub read: String,
    /// Records written per round. Default 10.
    #[serde(default = "default_records")]
    pub records: u32,
    /// A round every this long. Default 1s.
    #[serde(default = "default_interval")]
    pub every: Dur,
    /// The read that decides `visible`, after the write was acknowledged. Default 500ms.
    #[serde(default = "default_read_after")]
    pub read_after: Dur,
    /// A record still unseen this long after a later record was seen is `lost`. Default 30s.
    #[serde(default = "default_lost_after")]
    pub lost_after: Dur,
    /// Per request. Default 2s.
    #[serde(default = "default_http_timeout")]
    pub timeout: Dur,
}

fn default_records() -> u32 {
    10
}
fn default_read_after() -> Dur {
    Dur::from_millis(500)
}
fn default_lost_after() -> Dur {
    Dur::from_secs(30)
}

fn default_interval() -> Dur {
    Dur::from_secs(1)
}
fn default_command_timeout() -> Dur {
    Dur::from_secs(5)
}

/// One step of the method.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Apply a fault. It stays until its `duration` ends, a `revert` step names
    /// it, or the method ends.
    Inject(Box<Inject>),
    /// Do nothing for a while (the hypothesis is still watched).
    Wait(Dur),
    /// Revert the fault injected under this name.
    Revert(String),
    /// Run these steps at once; the group ends when all of them have.
    Parallel(Vec<Step>),
}

/// A fault to inject. Exactly one backend key (`process`, `latency`) is given.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inject {
    /// Name for `revert` steps and reports. Default: `BACKEND-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// If set, the step holds the fault this long, then reverts it.
    #[serde(default)]
    pub duration: Option<Dur>,
    /// Signal local processes.
    #[serde(default)]
    pub process: Option<ProcessFault>,
    /// Latency Monkey: delay (and fail) traffic through a Toxiproxy-compatible proxy.
    #[serde(default)]
    pub latency: Option<LatencyFault>,
    /// Cut links that go through a Toxiproxy-compatible proxy (no root needed).
    #[serde(default)]
    pub sever: Option<SeverFault>,
    /// Sever (or degrade) network paths with nftables rules in a table the run owns.
    #[serde(default)]
    pub netfilter: Option<NetfilterFault>,
    /// Split-brain: cut two of the lab's regions apart, however the lab is built.
    #[serde(default)]
    pub split: Option<SplitFault>,
}

/// Cuts two lab regions apart. In a `--netns` lab, nftables drops every packet between
/// their subnets in the lab's router namespace (a `netfilter` fault); in a loopback lab,
/// the replication proxies between them are disabled (a `sever` fault).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitFault {
    /// The two regions, e.g. `[us-east, us-west]`.
    pub regions: Vec<String>,
}

/// Cuts links that go through proxies: the lab's replication links, or any
/// service already fronted by `simian proxy` or Toxiproxy.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeverFault {
    /// The proxies' admin API, e.g. `${lab.proxy}`.
    pub api: String,
    /// The proxies to cut, by name.
    pub proxies: Vec<String>,
    /// `disable` (default: the proxy goes down, connections are refused and closed) or
    /// `blackhole` (connections stay open, nothing gets through: a `timeout` toxic).
    #[serde(default)]
    pub how: SeverHow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverHow {
    #[default]
    Disable,
    Blackhole,
}

/// A network partition: nftables drop rules in a table the run creates and
/// deletes, never touching anyone else's rules.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetfilterFault {
    /// The network namespace to act in (a name `ip netns` knows). Default: the host.
    #[serde(default)]
    pub netns: Option<String>,
    /// Which paths to cut, in the Jepsen tradition.
    pub partition: Partition,
    /// `both` (default), `ingress` (into group `a`/`group`) or `egress` (out of it).
    #[serde(default)]
    pub direction: Direction,
    /// Share of packets dropped on the cut paths. Default 100% (a full partition).
    #[serde(default)]
    pub loss: Option<simian_core::Percent>,
}

/// Groups are lists of addresses or CIDRs (`10.1.0.0/24`, `fd00::1`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Partition {
    /// Cut every path between `a` and `b`.
    Sever { a: Vec<String>, b: Vec<String> },
    /// Cut every path between `group` and any other address.
    Isolate { group: Vec<String> },
    /// Cut `a` from `b`, while `bridge` still reaches both.
    Bridge {
        a: Vec<String>,
        b: Vec<String>,
        bridge: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    Ingress,
    Egress,
}

/// Latency and errors injected through a proxy's Toxiproxy API: `simian proxy`
/// (the lab has one) or a real Toxiproxy server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyFault {
    /// `proxy` (simian's proxy; default) or `toxiproxy` (a Toxiproxy server: a
    /// distribution becomes its closest `latency ± jitter`, with a warning).
    #[serde(default)]
    pub via: LatencyVia,
    /// The proxy's admin API, e.g. `${lab.proxy}` or `http://127.0.0.1:8474`.
    /// Default: the proxies this run starts (`proxies:`).
    #[serde(default)]
    pub api: Option<String>,
    /// The proxy, by name, whose traffic is delayed (e.g. `store-us-east` in the lab).
    pub proxy: String,
    /// `downstream` (answers; default) or `upstream` (requests).
    #[serde(default)]
    pub stream: Stream,
    /// Share of requests delayed (per request in HTTP mode, per connection in TCP mode). Default 100%.
    #[serde(default)]
    pub toxicity: Option<simian_core::Percent>,
    /// The delay, e.g. `{ lognormal: { median: 20ms, sigma: 0.5 } }`.
    pub distribution: simian_delay::Distribution,
    /// Samples below this are redrawn. Default 0s.
    #[serde(default)]
    pub min: Option<Dur>,
    /// Samples above this are redrawn. Default 60s.
    #[serde(default)]
    pub max: Option<Dur>,
    /// Also answer a share of requests with an error status (HTTP-mode proxies only).
    #[serde(default)]
    pub errors: Option<ErrorInjection>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LatencyVia {
    #[default]
    Proxy,
    Toxiproxy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    #[default]
    Downstream,
    Upstream,
}

impl Stream {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::Downstream => "downstream",
            Stream::Upstream => "upstream",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorInjection {
    /// Share of requests answered with `status`, e.g. `1%`.
    pub rate: simian_core::Percent,
    /// Default 503.
    #[serde(default = "default_error_status")]
    pub status: u16,
}

fn default_error_status() -> u16 {
    503
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessFault {
    /// Which processes are eligible.
    pub target: ProcessTarget,
    /// `kill` (SIGKILL; reverted by restarting, which lab instances support
    /// and other targets need `restart` for) or `stop` (SIGSTOP; reverted with SIGCONT).
    #[serde(default)]
    pub action: ProcessAction,
    /// How many of the eligible processes: `all` (default), a count or a percent,
    /// chosen at random with the run's seed.
    #[serde(default)]
    pub pick: Pick,
    /// For non-lab targets: a shell command that brings a killed process back.
    #[serde(default)]
    pub restart: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessAction {
    #[default]
    Kill,
    Stop,
}

/// How to find processes, keyed by method.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ProcessTarget {
    /// Instances of the embedded lab, narrowed by region, zone and instance id.
    Lab(LabSelector),
    /// The pid written in this file.
    Pidfile(String),
    /// Processes whose name (`comm`) is exactly this.
    Name(String),
    /// Processes whose full command line matches this regular expression.
    Pattern(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabSelector {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Most targets the whole run may hit, as a count or a percent of the
    /// eligible ones (per kind of target). The run refuses rather than trims.
    #[serde(default)]
    pub max_blast_radius: Option<Pick>,
    /// After this long, everything is reverted and the run aborts (exit 2). Default 30m.
    #[serde(default)]
    pub max_duration: Option<Dur>,
    /// Allow faults that cannot be undone (e.g. killing a process nothing restarts).
    #[serde(default)]
    pub allow_irreversible: bool,
}
