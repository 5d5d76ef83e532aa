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
    /// Ordered steps: `inject`, `wait`, `revert`, `parallel`, `evacuate`, `confirm`.
    pub method: Vec<Step>,
    #[serde(default)]
    pub guards: Guards,
    /// Proxies the run itself starts (in process, before the probes) and stops at the end,
    /// e.g. to put a dependency behind a proxy for one experiment. Their listen addresses are
    /// `${proxies.NAME}` and their API `${proxies.api}`; a `latency` fault without `api` uses them.
    #[serde(default)]
    pub proxies: BTreeMap<String, RunProxy>,
    /// Webhooks told when the run starts, aborts and ends with a verdict, e.g. a Slack
    /// incoming webhook, so a game day is visible where the team talks.
    #[serde(default)]
    pub notify: Vec<Notify>,
}

/// A webhook that hears about a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Where to POST, `http://` or `https://`.
    pub url: String,
    /// `slack` (an incoming-webhook message) or `generic` (the run's facts as JSON).
    /// Default: `slack` for `hooks.slack.com` URLs, else `generic`.
    #[serde(default)]
    pub format: Option<NotifyFormat>,
    /// Which moments: `start`, `abort`, `verdict`. Default: all three.
    #[serde(default = "all_moments")]
    pub on: Vec<Moment>,
    /// Extra request headers, e.g. `{ Authorization: "Bearer ${TOKEN}" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    Slack,
    Generic,
}

/// A moment of a run that notifications can be sent for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Moment {
    Start,
    Abort,
    Verdict,
}

fn all_moments() -> Vec<Moment> {
    vec![Moment::Start, Moment::Abort, Moment::Verdict]
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
    /// Once every fault is reverted, the `recovery` assertions (or, without any, the
    /// hypothesis) must hold again within this; the time they took is reported.
    #[serde(default)]
    pub recovers_within: Option<Dur>,
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
    /// CloudWatch alarms' states; `value` is how many are in ALARM (a stop condition).
    Cloudwatch(CloudwatchProbe),
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
            ProbeSpec::Cloudwatch(_) => "cloudwatch",
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

/// CloudWatch alarms read at an interval, like AWS FIS stop conditions: `value` is the
/// number of them in the ALARM state (`INSUFFICIENT_DATA` does not count), so
/// `stop_when: [alarms.value > 0]` aborts the run when one fires.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudwatchProbe {
    /// Alarm names; each must exist.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Every alarm whose name starts with this; at least one must exist.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Default: the SDK's region (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint to use instead of AWS's (e.g. a moto server); default: the SDK's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Default 10s.
    #[serde(default = "default_alarm_interval")]
    pub interval: Dur,
    /// Default 5s.
    #[serde(default = "default_command_timeout")]
    pub timeout: Dur,
}

fn default_alarm_interval() -> Dur {
    Dur::from_secs(10)
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
    /// Chaos Kong: shift a region's traffic to another a step at a time, gated on the
    /// hypothesis before each next step; hold; shift back.
    Evacuate(Box<Evacuate>),
    /// Game days: wait for an operator (`simian continue RUN`, or Enter in the run's
    /// terminal) before the next step; no answer within `timeout` aborts the run.
    Confirm(Confirm),
}

/// An operator's go-ahead before the next step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirm {
    /// What the operator is asked, e.g. "zone down: dashboards green? continue to the region cut".
    pub message: String,
    /// How long to wait for the answer before aborting (every fault reverted). Default 10m.
    #[serde(default = "default_confirm_timeout")]
    pub timeout: Dur,
}

fn default_confirm_timeout() -> Dur {
    Dur::from_secs(600)
}

/// A gradual evacuation. Before each step after the first, the hypothesis must hold over
/// the sliding window; if it does not, the ramp stops, traffic goes back to where it
/// started, and the run aborts (exit 2).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evacuate {
    /// Name for reports and `revert` steps. Default: `evacuate-N`.
    #[serde(default)]
    pub name: Option<String>,
    /// The region whose traffic moves.
    pub from: String,
    /// The region that takes it.
    pub to: String,
    /// The shares of `from`'s traffic moved, in order, e.g. `[10%, 25%, 50%, 100%]`.
    #[serde(default)]
    pub steps: Option<Vec<simian_core::Percent>>,
    /// Or even steps of this size up to 100%, e.g. `25%`.
    #[serde(default)]
    pub by: Option<simian_core::Percent>,
    /// Time at each step before the gate of the next.
    pub every: Dur,
    /// Time at the last step. Default 0s.
    #[serde(default)]
    pub hold: Dur,
    /// `gradual` (default: the steps in reverse, `every` apart) or `immediate`.
    #[serde(default)]
    pub back: Back,
    /// The traffic shifter.
    pub via: Shifter,
}

impl Evacuate {
    /// The shares of the ramp, in order (fractions in 0..=1).
    pub fn shares(&self) -> Vec<f64> {
        match (&self.steps, self.by) {
            (Some(s), _) => s.iter().map(|p| p.fraction()).collect(),
            (None, Some(by)) if by.fraction() > 0.0 => {
                let n = (1.0 / by.fraction()).ceil() as usize;
                (1..=n)
                    .map(|i| (i as f64 * by.fraction()).min(1.0))
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Back {
    #[default]
    Gradual,
    Immediate,
}

/// What moves traffic between regions. Each saves the original state in the journal
/// before changing anything; revert restores it exactly.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Shifter {
    /// The lab's global router (its steering API at `${lab.global}`).
    Lab(LabShifter),
    /// HAProxy server weights, through its runtime API (the admin socket).
    Haproxy(HaproxyShifter),
    /// A generic webhook for in-house traffic tools.
    Http(HttpShifter),
    /// Route53 weighted record sets: `from`'s weight moves to `to` step by step.
    Route53(Route53Shifter),
}

/// Weighted record sets of one name in a Route53 hosted zone, one set per region (its
/// `SetIdentifier`). Other sets of the name are left alone.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route53Shifter {
    /// The hosted zone: its id (`Z0123...`) or its name (`example.com`).
    pub zone: String,
    /// The record name, e.g. `api.example.com`.
    pub record: String,
    /// The record type, e.g. `A` or `CNAME`. Default: the type both sets share.
    #[serde(default, rename = "type")]
    pub record_type: Option<String>,
    /// `SetIdentifier` of each region's record set, e.g. `{ us-east: use1 }`.
    /// Default: the region's name.
    #[serde(default)]
    pub set_identifiers: BTreeMap<String, String>,
    /// An endpoint to use instead of AWS's (e.g. a moto server); default: the SDK's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabShifter {}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HaproxyShifter {
    /// The admin socket: a path (`/run/haproxy/admin.sock`) or `tcp:127.0.0.1:9999`.
    pub socket: String,
    /// The backend whose servers are weighted.
    pub backend: String,
    /// Servers of the `from` region, by name; their weights shrink with the share moved.
    pub from_servers: Vec<String>,
    /// Servers of the `to` region; they keep their weights (restored on revert).
    pub to_servers: Vec<String>,
}

/// Requests templated with `${percent}` (0-100), `${fraction}` (0-1), `${from}`, `${to}`,
/// and in `restore`, `${state}`: the body `get` answered before anything changed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpShifter {
    /// Sent at each step.
    pub set: HttpRequest,
    /// Reads the current state before the first step (kept for `restore`).
    #[serde(default)]
    pub get: Option<HttpRequest>,
    /// Sent to revert. Default: `set` with percent 0.
    #[serde(default)]
    pub restore: Option<HttpRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// Default `POST` for `set` and `restore`, `GET` for `get`.
    #[serde(default)]
    pub method: Option<String>,
    /// `http://` URL.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body, e.g. `{"region": "${from}", "weight": ${percent}}`.
    #[serde(default)]
    pub body: Option<String>,
}

/// Moves a share of one region's traffic to another at once (the `inject` form of a
/// shift; `evacuate` ramps it). Reverting restores the original state.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftFault {
    pub from: String,
    pub to: String,
    /// Share of `from`'s traffic moved. Default 100%.
    #[serde(default)]
    pub percent: Option<simian_core::Percent>,
    pub via: Shifter,
}

/// A fault to inject. Exactly one backend key (`process`, `latency`, ...) is given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
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
    /// Move a share of a region's traffic to another region.
    #[serde(default)]
    pub shift: Option<ShiftFault>,
    /// Chaos Gorilla on AWS: stop (or terminate) the opted-in EC2 instances of a zone.
    #[serde(default)]
    pub aws_ec2: Option<AwsEc2Fault>,
    /// Split-brain on AWS: each side's network ACLs deny the other side's CIDRs.
    #[serde(default)]
    pub aws_nacl: Option<AwsNaclFault>,
}

impl Inject {
    /// True when the fault acts on a cloud account (a run needs `--yes` or
    /// `guards.allow_cloud`).
    pub fn is_cloud(&self) -> bool {
        self.aws_ec2.is_some()
            || self.aws_nacl.is_some()
            || self
                .shift
                .as_ref()
                .is_some_and(|s| matches!(s.via, Shifter::Route53(_)))
    }
}

/// Severs two sides (e.g. two regions' VPCs) by adding DENY entries for the other side's
/// CIDRs to every network ACL of each side's VPCs, ingress and egress, numbered before the
/// ACL's own rules. Revert deletes exactly the entries added.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsNaclFault {
    /// The two sides.
    pub sides: Vec<NaclSide>,
    /// `both` (default), `ingress` or `egress`: which of each ACL's directions deny.
    #[serde(default)]
    pub direction: Direction,
    /// An endpoint to use instead of AWS's (e.g. a moto server); default: the SDK's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// One side of a network-ACL cut: VPCs by id and/or by tags, in one region.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NaclSide {
    /// The region of these VPCs; default: the SDK's (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// VPC ids, e.g. `[vpc-0abc]`.
    #[serde(default)]
    pub vpcs: Vec<String>,
    /// Tags every VPC of the side carries, e.g. `{ simian:side: east }`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// More CIDRs of this side, denied in the other side's ACLs (e.g. on-premises
    /// ranges). The VPCs' own CIDR blocks always are.
    #[serde(default)]
    pub cidrs: Vec<String>,
}

/// Stops or terminates EC2 instances selected by zone, tags, state and filters. Only
/// instances carrying the opt-in tag are ever touched.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsEc2Fault {
    /// The availability zone, e.g. `us-east-1a`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Tags every target must carry, e.g. `{ app: api }`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Instance states eligible. Default `[running]`.
    #[serde(default)]
    pub states: Option<Vec<String>>,
    /// More EC2 `DescribeInstances` filters, by name, e.g. `{ instance-type: [m5.large] }`.
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
    /// The opt-in tag, `KEY=VALUE`. Default `simian:opt-in=true`.
    #[serde(default)]
    pub opt_in: Option<String>,
    /// How many of the eligible: `all` (default), a count or a percent, seeded.
    #[serde(default)]
    pub pick: Pick,
    /// `stop` (default; revert starts them again) or `terminate` (irreversible).
    #[serde(default)]
    pub action: Ec2Action,
    /// The region; default: the SDK's (`AWS_REGION`, profile).
    #[serde(default)]
    pub region: Option<String>,
    /// An endpoint to use instead of AWS's (e.g. a moto server); default: the SDK's
    /// (`AWS_ENDPOINT_URL`).
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ec2Action {
    #[default]
    Stop,
    Terminate,
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
    /// Allow faults on cloud accounts (AWS) without `--yes` on the command line.
    #[serde(default)]
    pub allow_cloud: bool,
    /// Chaos Monkey's outage checker: must pass before anything else happens (e.g. "no
    /// incident is open"), or the run is not started (exit 3).
    #[serde(default)]
    pub outage_check: Option<OutageCheck>,
}

/// A check that the system is not already in an outage: a command (exit 0 passes) or
/// an HTTP GET (a 2xx answer passes).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageCheck {
    /// Run with `sh -c`, e.g. `test "$(curl -s https://status.example.com/api/open)" = 0`.
    #[serde(default)]
    pub run: Option<String>,
    /// GET this URL (`http://` only).
    #[serde(default)]
    pub url: Option<String>,
    /// Default 10s.
    #[serde(default = "default_outage_timeout")]
    pub timeout: Dur,
}

fn default_outage_timeout() -> Dur {
    Dur::from_secs(10)
}
