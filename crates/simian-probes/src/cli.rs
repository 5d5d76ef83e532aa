//! `simian probe ...`: run one probe ad hoc from a terminal, watch it once a
//! second on stderr, and get a summary (or one JSON object with `--json`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use simian_core::{Dur, Metric, Metrics, Recorder};
use simian_experiment::{
    Aggregate, CommandProbe, EmptyResult, HttpProbe, PromRange, PrometheusProbe, ReplicationProbe,
    TcpProbe,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::http::{HttpCounts, HttpStats};
use crate::prometheus::PromStats;
use crate::{command, http, prometheus, replication, tcp, ProbeError};

#[derive(Debug, clap::Subcommand)]
pub enum ProbeCommand {
    /// Open-loop HTTP load at a fixed rate: success ratio, achieved rate, latency percentiles.
    ///
    /// Requests are scheduled on the clock (t0 + i/rate) whatever the replies do, and
    /// latency runs from the scheduled time to the end of the body, so a stall shows
    /// in the percentiles (no coordinated omission). A request due while
    /// --max-in-flight are outstanding fails at once.
    #[command(after_help = "Examples:\n  \
        simian probe http http://127.0.0.1:8080/health --rate 500 --duration 30s\n  \
        simian probe http http://10.0.0.7/api -X POST -H 'Authorization: Bearer x' --expect-status 200,201 --json")]
    Http(HttpArgs),
    /// Connect over TCP at an interval: ok when connected within the timeout.
    #[command(
        after_help = "Example:\n  simian probe tcp 127.0.0.1:5432 --interval 200ms --duration 1m"
    )]
    Tcp(TcpArgs),
    /// Run `sh -c CMD` at an interval: ok on exit 0; a number on stdout is the value.
    #[command(
        after_help = "Example:\n  simian probe command 'redis-cli -p 6380 dbsize' --interval 1s --duration 30s"
    )]
    Command(CommandArgs),
    /// Ask Prometheus a PromQL query at an interval: ok when it yields one number, the value.
    ///
    /// The query must yield a scalar or exactly one series: aggregate several with
    /// sum(...), max(...). No series fails unless --empty zero; NaN fails. With
    /// --range, the query is evaluated over that span ending now and its points are
    /// aggregated. The summary shows the last value and, if queries failed, why the
    /// last one did.
    #[command(after_help = "Examples:\n  \
        simian probe prometheus http://127.0.0.1:9090 'sum(up{job=\"store\"})' --duration 30s\n  \
        simian probe prometheus http://127.0.0.1:9090 'max(simian_lab_replication_lag_seconds)' \\\n    \
        --range 1m --aggregate max --json\n  \
        simian probe prometheus http://127.0.0.1:9090 'sum(rate(errors_total[1m]))' --empty zero")]
    Prometheus(PrometheusArgs),
    /// Write records through one region, read them through another: replication lag and loss.
    ///
    /// Every --every, --records unique records are PUT to WRITE and read back from READ
    /// (both URLs with `{key}`) until seen: at 5ms, 10ms, 20ms... after the writes,
    /// exactly at --read-after, then at most 1s apart. The latency percentiles are
    /// convergence times (write acknowledged to first seen, an upper bound); `visible` is
    /// the share of the latest round seen by --read-after, `queued` the records past it
    /// not seen yet, `lost` those never seen though later ones were (--lost-after).
    #[command(after_help = "Examples:\n  \
        simian probe replication 'http://127.0.0.1:4050/kv/{key}' 'http://127.0.0.1:4150/kv/{key}'\n  \
        simian probe replication \"$W/kv/{key}\" \"$R/kv/{key}\" --records 1000 --read-after 500ms -d 1m --json")]
    Replication(ReplicationArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReplicationArgs {
    /// URL a record is PUT to, with `{key}`.
    pub write: String,
    /// URL a record is read back from (GET), with `{key}`.
    pub read: String,
    /// Records per round.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub records: u32,
    /// A round every this long.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub every: Dur,
    /// The read that decides `visible`.
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub read_after: Dur,
    /// Unseen this long after a later record was seen: lost.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub lost_after: Dur,
    /// Per request.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub timeout: Dur,
    #[command(flatten)]
    pub common: Common,
}

/// Options every probe takes.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// How long to probe; Ctrl-C stops early and still prints the summary.
    #[arg(long, short = 'd', default_value = "10s", value_name = "DURATION")]
    pub duration: Dur,
    /// Print the final summary as one JSON object on stdout (latencies in seconds).
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// `http://` URL to load.
    pub url: String,
    /// Requests per second (at most 100000).
    #[arg(long, short = 'r', default_value_t = 200.0)]
    pub rate: f64,
    /// A request not answered (body included) within this is a failure.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    pub timeout: Dur,
    /// Requests outstanding at most; one due beyond it fails at once.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_in_flight: usize,
    /// HTTP method.
    #[arg(long, short = 'X', default_value = "GET")]
    pub method: String,
    /// Extra request header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Statuses that count as success, comma-separated [default: 200-399].
    #[arg(long, value_delimiter = ',', value_name = "CODES")]
    pub expect_status: Vec<u16>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct TcpArgs {
    /// `host:port` to connect to.
    pub address: String,
    /// Time between two connects.
    #[arg(long, short = 'i', default_value = "1s", value_name = "DURATION")]
    pub interval: Dur,
    /// A connect not made within this is a failure.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub timeout: Dur,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct CommandArgs {
    /// Shell command, run with `sh -c`.
    #[arg(value_name = "CMD")]
    pub run: String,
    /// Time between two runs.
    #[arg(long, short = 'i', default_value = "1s", value_name = "DURATION")]
    pub interval: Dur,
    /// A run still going after this is killed and fails.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: Dur,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, clap::Args)]
pub struct PrometheusArgs {
    /// The server's base URL, e.g. http://127.0.0.1:9090.
    pub url: String,
    /// PromQL yielding one number: a scalar or a single series.
    pub query: String,
    /// Evaluate over this span ending now and aggregate the points (needs --aggregate).
    #[arg(long, value_name = "DURATION", requires = "aggregate")]
    pub range: Option<Dur>,
    /// How a range's points become one number.
    #[arg(long, value_enum, requires = "range")]
    pub aggregate: Option<AggregateArg>,
    /// Resolution of the range [default: range / 30, at least 1s].
    #[arg(long, value_name = "DURATION", requires = "range")]
    pub step: Option<Dur>,
    /// What a result with no series means.
    #[arg(long, value_enum, default_value = "fail")]
    pub empty: EmptyArg,
    /// Time between two queries.
    #[arg(long, short = 'i', default_value = "1s", value_name = "DURATION")]
    pub interval: Dur,
    /// A query not answered within this fails.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: Dur,
    #[command(flatten)]
    pub common: Common,
}

/// `--aggregate` values, as in the YAML's `range.aggregate`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AggregateArg {
    Min,
    Max,
    Mean,
    Sum,
    Last,
}

/// `--empty` values, as in the YAML's `empty`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EmptyArg {
    /// No series is a failed query.
    Fail,
    /// No series reads as 0.
    Zero,
}

impl PrometheusArgs {
    fn spec(&self) -> PrometheusProbe {
        let aggregate = |a| match a {
            AggregateArg::Min => Aggregate::Min,
            AggregateArg::Max => Aggregate::Max,
            AggregateArg::Mean => Aggregate::Mean,
            AggregateArg::Sum => Aggregate::Sum,
            AggregateArg::Last => Aggregate::Last,
        };
        PrometheusProbe {
            url: self.url.clone(),
            query: self.query.clone(),
            range: self.range.zip(self.aggregate).map(|(over, a)| PromRange {
                over,
                step: self.step,
                aggregate: aggregate(a),
            }),
            empty: match self.empty {
                EmptyArg::Fail => EmptyResult::Fail,
                EmptyArg::Zero => EmptyResult::Zero,
            },
            interval: self.interval,
            timeout: self.timeout,
        }
    }
}

/// The final summary, printed as text or as JSON.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub probe: &'static str,
    pub target: String,
    /// How long the probe ran, in seconds.
    pub duration_s: f64,
    /// Requests per second asked for (http only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    pub count: u64,
    pub errors: u64,
    pub success_ratio: Option<f64>,
    /// Successful observations per second.
    pub rate: f64,
    /// All observations per second.
    pub throughput: f64,
    /// Latency percentiles, in seconds.
    pub latency_s: BTreeMap<&'static str, Option<f64>>,
    /// The last number a command printed or a query returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Why the last failed query failed (prometheus only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Records visible at the read delay (latest round), queued and lost (replication only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationCounts>,
    /// In-flight peak and failure causes (http only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCounts>,
}

/// The gauges of a replication probe at the end.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReplicationCounts {
    pub visible: Option<f64>,
    pub queued: Option<f64>,
    pub lost: Option<f64>,
}

const LATENCIES: [Metric; 6] = [
    Metric::P50,
    Metric::P90,
    Metric::P99,
    Metric::P999,
    Metric::Max,
    Metric::Mean,
];

/// Runs the probe subcommand; exits 0 whatever the probe saw.
pub async fn run(cmd: ProbeCommand) -> Result<i32, ProbeError> {
    let cancel = CancellationToken::new();
    let (summary, common) = match cmd {
        ProbeCommand::Http(a) => {
            let spec = HttpProbe {
                url: a.url.clone(),
                rate: a.rate,
                method: a.method,
                timeout: a.timeout,
                expect_status: (!a.expect_status.is_empty()).then_some(a.expect_status),
                headers: parse_headers(&a.headers)?,
                max_in_flight: a.max_in_flight,
            };
            let recorder = recorder_for(&a.common, a.timeout);
            let stats = Arc::new(HttpStats::default());
            let task = http::spawn(&spec, recorder.clone(), cancel.clone(), stats.clone())?;
            let watch = Watch {
                recorder,
                cancel,
                task,
                stats: Some(stats),
                prom: None,
            };
            let mut s = watch.run(&a.common, "requests").await;
            s.probe = "http";
            s.target = a.url;
            s.target_rate = Some(a.rate);
            (s, a.common)
        }
        ProbeCommand::Tcp(a) => {
            let spec = TcpProbe {
                address: a.address.clone(),
                interval: a.interval,
                timeout: a.timeout,
            };
            let recorder = recorder_for(&a.common, a.timeout);
            let task = tcp::spawn(&spec, recorder.clone(), cancel.clone())?;
            let mut s = Watch::plain(recorder, cancel, task)
                .run(&a.common, "connects")
                .await;
            s.probe = "tcp";
            s.target = a.address;
            (s, a.common)
        }
        ProbeCommand::Command(a) => {
            let spec = CommandProbe {
                run: a.run.clone(),
                interval: a.interval,
                timeout: a.timeout,
            };
            let recorder = recorder_for(&a.common, a.timeout);
            let task = command::spawn(&spec, recorder.clone(), cancel.clone())?;
            let mut s = Watch::plain(recorder, cancel, task)
                .run(&a.common, "runs")
                .await;
            s.probe = "command";
            s.target = a.run;
            (s, a.common)
        }
        ProbeCommand::Prometheus(a) => {
            let recorder = recorder_for(&a.common, a.timeout);
            let stats = Arc::new(PromStats::default());
            let task = prometheus::spawn_with_stats(
                &a.spec(),
                recorder.clone(),
                cancel.clone(),
                stats.clone(),
            )?;
            let mut s = Watch {
                recorder,
                cancel,
                task,
                stats: None,
                prom: Some(stats),
            }
            .run(&a.common, "queries")
            .await;
            s.probe = "prometheus";
            s.target = format!("`{}` at {}", a.query, a.url);
            if let (Some(over), Some(agg)) = (a.range, a.aggregate) {
                let agg = clap::ValueEnum::to_possible_value(&agg).expect("no variant is skipped");
                s.target += &format!(" ({} over {over})", agg.get_name());
            }
            (s, a.common)
        }
        ProbeCommand::Replication(a) => {
            let spec = ReplicationProbe {
                write: a.write.clone(),
                read: a.read.clone(),
                records: a.records,
                every: a.every,
                read_after: a.read_after,
                lost_after: a.lost_after,
                timeout: a.timeout,
            };
            let recorder = recorder_for(&a.common, a.lost_after);
            let task = replication::spawn(&spec, recorder.clone(), cancel.clone())?;
            let mut s = Watch::plain(recorder, cancel, task)
                .run(&a.common, "records")
                .await;
            s.probe = "replication";
            s.target = format!("{} → {}", a.write, a.read);
            (s, a.common)
        }
    };
    if common.json {
        println!(
            "{}",
            serde_json::to_string(&summary).expect("a summary serializes")
        );
    } else {
        print!("{}", render(&summary));
    }
    Ok(0)
}

/// A recorder that keeps the whole run, for the summary.
fn recorder_for(common: &Common, timeout: Dur) -> Arc<Recorder> {
    let keep = common.duration.0 + timeout.0 + Duration::from_secs(60);
    Arc::new(Recorder::new(keep))
}

fn parse_headers(raw: &[String]) -> Result<BTreeMap<String, String>, ProbeError> {
    let mut headers = BTreeMap::new();
    let mut problems = Vec::new();
    for h in raw {
        match h.split_once(':') {
            Some((k, v)) if !k.trim().is_empty() => {
                headers.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => problems.push(format!("header `{h}`: expected `Name: value`")),
        }
    }
    if problems.is_empty() {
        Ok(headers)
    } else {
        Err(ProbeError::Invalid(problems))
    }
}

/// A running probe and what the terminal needs to watch it.
struct Watch {
    recorder: Arc<Recorder>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    stats: Option<Arc<HttpStats>>,
    prom: Option<Arc<PromStats>>,
}

impl Watch {
    /// A probe with nothing to watch beyond its recorder.
    fn plain(recorder: Arc<Recorder>, cancel: CancellationToken, task: JoinHandle<()>) -> Watch {
        Watch {
            recorder,
            cancel,
            task,
            stats: None,
            prom: None,
        }
    }

    /// Prints progress each second until the duration ends or Ctrl-C, then
    /// stops the probe, lets what is in flight finish, and sums up.
    async fn run(self, common: &Common, noun: &str) -> Summary {
        let start = Instant::now();
        let end = start + common.duration.0;
        let mut ticks =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let (mut last, mut count, mut errors) = (self.recorder.started(), 0u64, 0u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(end) => break,
                _ = &mut ctrl_c => break,
                _ = ticks.tick(), if !common.quiet => {
                    // Only the last second is read: summing the whole run under the
                    // recorder's lock each second would stall the probe itself.
                    let now = Instant::now();
                    let w = self.recorder.between(last, now);
                    last = now;
                    count += w.count;
                    errors += w.errors;
                    let ok = if count > 0 { (count - errors) as f64 / count as f64 } else { 0.0 };
                    let p99 = w.p99.map_or("-".into(), |v| Metric::P99.format(v));
                    let mut line = format!(
                        "{:>4.0}s  {count} {noun}  {errors} errors  ok {}  p99(last 1s) {p99}",
                        (now - start).as_secs_f64(),
                        Metric::SuccessRatio.format(ok),
                    );
                    if let Some(s) = &self.stats {
                        line += &format!("  in flight {}", s.snapshot().in_flight);
                    }
                    if let (Some(q), Some(l)) = (w.queued, w.lost) {
                        line += &format!("  queued {q}  lost {l}");
                    }
                    eprintln!("{line}");
                }
            }
        }
        let ran = start.elapsed();
        self.cancel.cancel();
        if !common.quiet
            && self
                .stats
                .as_ref()
                .is_some_and(|s| s.snapshot().in_flight > 0)
        {
            eprintln!("stopping: waiting for requests in flight (up to the timeout)");
        }
        let mut task = self.task;
        tokio::select! {
            _ = &mut task => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("interrupted again: dropping what is in flight");
                task.abort();
                let _ = task.await;
            }
        }
        let m = self
            .recorder
            .between(self.recorder.started(), Instant::now());
        let mut s = summarize(&m, ran, self.stats.map(|s| s.snapshot()));
        if m.queued.is_some() {
            s.replication = Some(ReplicationCounts {
                visible: m.visible,
                queued: m.queued,
                lost: m.lost,
            });
        }
        if m.errors > 0 {
            s.last_error = self.prom.and_then(|p| p.last_error());
        }
        s
    }
}

fn summarize(m: &Metrics, ran: Duration, http: Option<HttpCounts>) -> Summary {
    let secs = ran.as_secs_f64().max(1e-9);
    Summary {
        probe: "",
        target: String::new(),
        duration_s: ran.as_secs_f64(),
        target_rate: None,
        count: m.count,
        errors: m.errors,
        success_ratio: m.get(Metric::SuccessRatio),
        rate: (m.count - m.errors) as f64 / secs,
        throughput: m.count as f64 / secs,
        latency_s: LATENCIES.iter().map(|l| (l.name(), m.get(*l))).collect(),
        value: m.value,
        last_error: None,
        replication: None,
        http,
    }
}

/// The summary as text for a terminal.
fn render(s: &Summary) -> String {
    let fmt = |m: Metric, v: Option<f64>| v.map_or("-".to_string(), |v| m.format(v));
    let mut out = format!("{} probe of {} for {:.2}s", s.probe, s.target, s.duration_s);
    if let Some(r) = s.target_rate {
        out += &format!(" at {r}/s");
    }
    out += "\n";
    out += &format!(
        "  count       {} ({} errors, success {})\n",
        s.count,
        s.errors,
        fmt(Metric::SuccessRatio, s.success_ratio)
    );
    out += &format!(
        "  rate        {} ok, {} all\n",
        Metric::Rate.format(s.rate),
        Metric::Throughput.format(s.throughput)
    );
    let lat: Vec<String> = LATENCIES
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m.name(),
                fmt(*m, s.latency_s.get(m.name()).copied().flatten())
            )
        })
        .collect();
    out += &format!("  latency     {}\n", lat.join("  "));
    if let Some(v) = s.value {
        out += &format!("  value       {v}\n");
    }
    if let Some(r) = &s.replication {
        out += &format!(
            "  replicated  visible {}  queued {}  lost {} (latency above: convergence)\n",
            fmt(Metric::Visible, r.visible),
            fmt(Metric::Queued, r.queued),
            fmt(Metric::Lost, r.lost)
        );
    }
    if let Some(e) = &s.last_error {
        out += &format!("  last error  {e}\n");
    }
    if let Some(h) = &s.http {
        out += &format!("  in flight   peak {}\n", h.peak_in_flight);
        out += &format!(
            "  probe lag   mean {}  max {} (due time to send; counted in the latencies)\n",
            Metric::Mean.format(h.schedule_lag_mean_s),
            Metric::Max.format(h.schedule_lag_max_s)
        );
        if s.errors > 0 {
            out += &format!(
                "  failures    {} timeouts, {} connect, {} bad status, {} over max in flight, {} other\n",
                h.timeouts, h.connect_errors, h.bad_status, h.rejected, h.other_errors
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{serve, status};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ProbeCommand,
    }

    #[test]
    fn http_arguments_parse_with_units_and_lists() {
        let cli = Cli::try_parse_from([
            "simian",
            "http",
            "http://127.0.0.1:1/",
            "--rate",
            "50",
            "-d",
            "1.5s",
            "--timeout",
            "250ms",
            "-H",
            "X-A: b",
            "--expect-status",
            "200,204",
            "--json",
        ])
        .unwrap();
        let ProbeCommand::Http(a) = cli.cmd else {
            panic!("not http")
        };
        assert_eq!(a.common.duration, Dur::from_millis(1500));
        assert_eq!(a.timeout, Dur::from_millis(250));
        assert_eq!(a.expect_status, vec![200, 204]);
        assert!(a.common.json);
        assert_eq!(parse_headers(&a.headers).unwrap()["X-A"], "b");
        assert!(parse_headers(&["nocolon".into()]).is_err());
    }

    #[test]
    fn prometheus_arguments_parse_into_the_yaml_spec() {
        let parse = |args: &[&str]| {
            let mut all = vec!["simian", "prometheus", "http://127.0.0.1:9090", "sum(up)"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|cli| match cli.cmd {
                ProbeCommand::Prometheus(a) => a.spec(),
                _ => panic!("not prometheus"),
            })
        };
        let spec = parse(&[]).unwrap();
        assert!(spec.range.is_none());
        assert_eq!(spec.empty, EmptyResult::Fail);
        assert_eq!(
            (spec.interval, spec.timeout),
            (Dur::from_secs(1), Dur::from_secs(5))
        );
        let spec = parse(&["--range", "30s", "--aggregate", "max", "--step", "2s"]).unwrap();
        let range = spec.range.unwrap();
        assert_eq!(range.over, Dur::from_secs(30));
        assert_eq!(range.step, Some(Dur::from_secs(2)));
        assert_eq!(range.aggregate, Aggregate::Max);
        assert_eq!(
            parse(&["--empty", "zero"]).unwrap().empty,
            EmptyResult::Zero
        );
        // A range needs its aggregate, and the other way round.
        assert!(parse(&["--range", "30s"]).is_err());
        assert!(parse(&["--aggregate", "min"]).is_err());
        assert!(parse(&["--step", "1s"]).is_err());
        assert!(parse(&["--range", "30s", "--aggregate", "median"]).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_prometheus_run_says_why_in_the_summary() {
        let addr = serve(|_| async {
            let body = r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"region":"a"},"value":[1,"1"]},{"metric":{"region":"b"},"value":[1,"2"]}]}}"#;
            hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)))
        })
        .await;
        let url = format!("http://{addr}");
        let Cli {
            cmd: ProbeCommand::Prometheus(a),
        } = Cli::try_parse_from([
            "simian",
            "prometheus",
            &url,
            "x",
            "-i",
            "100ms",
            "-d",
            "500ms",
            "-q",
        ])
        .unwrap()
        else {
            panic!("not prometheus")
        };
        let recorder = recorder_for(&a.common, a.timeout);
        let stats = Arc::new(PromStats::default());
        let cancel = CancellationToken::new();
        let task = prometheus::spawn_with_stats(
            &a.spec(),
            recorder.clone(),
            cancel.clone(),
            stats.clone(),
        )
        .unwrap();
        let s = Watch {
            recorder,
            cancel,
            task,
            stats: None,
            prom: Some(stats),
        }
        .run(&a.common, "queries")
        .await;
        assert!(s.count >= 4 && s.errors == s.count, "{s:?}");
        assert_eq!(s.value, None);
        let why = s.last_error.clone().unwrap();
        assert!(why.contains("2 series"), "{why}");
        let text = render(&s);
        assert!(
            text.contains("  last error  the query returned 2 series"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["last_error"], why.as_str());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_http_run_sums_up() {
        let addr = serve(|_| async { status(200) }).await;
        let Cli {
            cmd: ProbeCommand::Http(a),
        } = Cli::try_parse_from([
            "simian",
            "http",
            &format!("http://{addr}/"),
            "--rate",
            "100",
            "-d",
            "1s",
            "-q",
        ])
        .unwrap()
        else {
            panic!("not http")
        };
        let spec = HttpProbe {
            url: a.url.clone(),
            rate: a.rate,
            method: a.method.clone(),
            timeout: a.timeout,
            expect_status: None,
            headers: BTreeMap::new(),
            max_in_flight: a.max_in_flight,
        };
        let recorder = recorder_for(&a.common, a.timeout);
        let stats = Arc::new(HttpStats::default());
        let cancel = CancellationToken::new();
        let task = http::spawn(&spec, recorder.clone(), cancel.clone(), stats.clone()).unwrap();
        let s = Watch {
            recorder,
            cancel,
            task,
            stats: Some(stats),
            prom: None,
        }
        .run(&a.common, "requests")
        .await;
        assert!((90..=110).contains(&s.count), "{s:?}");
        assert_eq!(s.errors, 0);
        assert!((90.0..=110.0).contains(&s.rate), "{s:?}");
        assert!(s.http.unwrap().peak_in_flight >= 1);
        let text = render(&s);
        assert!(text.contains("p99"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert!(json["latency_s"]["p99"].is_f64(), "{json}");
        assert!(json["http"]["peak_in_flight"].is_u64(), "{json}");
    }
}
