//! A run's notifications: the experiment's `notify` webhooks plus `--notify` ones, told
//! at its start, its abort and its verdict.

use std::time::SystemTime;

use simian_engine::{EventKind, RunReport};
use simian_experiment::{Moment, Notify};
use simian_notify::{Notice, Notifier};
use tokio::task::JoinHandle;

pub struct Notices {
    notifier: std::sync::Arc<Notifier>,
    base: Notice,
    pending: Vec<JoinHandle<Vec<String>>>,
}

impl Notices {
    pub fn new(
        mut hooks: Vec<Notify>,
        extra: &[String],
        experiment: &str,
        journal: &std::path::Path,
    ) -> Notices {
        hooks.extend(extra.iter().map(|url| Notify {
            url: url.clone(),
            format: None,
            on: vec![Moment::Start, Moment::Abort, Moment::Verdict],
            headers: Default::default(),
        }));
        let run_id = crate::operator::run_name(journal);
        Notices {
            notifier: std::sync::Arc::new(Notifier::new(hooks)),
            base: Notice {
                event: Moment::Start,
                experiment: experiment.to_string(),
                run_id,
                host: nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                user: simian_engine::user(),
                at: String::new(),
                journal: journal.display().to_string(),
                verdict: None,
                exit_code: None,
                reason: None,
                failed: vec![],
                time_to_recover: None,
            },
            pending: Vec::new(),
        }
    }

    /// Starts telling the webhooks about `ev` if it is a start or an abort.
    pub fn on_event(&mut self, ev: &EventKind) {
        let notice = match ev {
            EventKind::Started { .. } => self.notice(Moment::Start),
            EventKind::Aborting { reason } => Notice {
                reason: Some(reason.clone()),
                ..self.notice(Moment::Abort)
            },
            _ => return,
        };
        self.spawn(notice);
    }

    /// Tells the verdict and waits for every notification still under way.
    pub async fn finish(mut self, r: &RunReport) {
        if self.notifier.is_empty() {
            return;
        }
        let failed = r
            .assertions
            .iter()
            .filter(|a| a.held == Some(false))
            .map(|a| format!("{}: {} ({})", a.phase.name(), a.assertion, a.detail))
            .collect();
        let notice = Notice {
            run_id: r.run_id.clone(),
            verdict: Some(r.verdict.name().into()),
            exit_code: Some(r.exit_code),
            reason: r.reason.clone(),
            failed,
            time_to_recover: r.recovery.as_ref().and_then(|x| x.time_to_recover),
            ..self.notice(Moment::Verdict)
        };
        self.spawn(notice);
        for h in self.pending.drain(..) {
            for w in h.await.unwrap_or_default() {
                eprintln!("warning: {w}");
            }
        }
    }

    fn notice(&self, event: Moment) -> Notice {
        Notice {
            event,
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ..self.base.clone()
        }
    }

    fn spawn(&mut self, notice: Notice) {
        if self.notifier.is_empty() {
            return;
        }
        let n = self.notifier.clone();
        self.pending
            .push(tokio::spawn(async move { n.send(&notice).await }));
    }
}
