//! `tagrelay redrive`: replay a function's dead-lettered events through the same handler the
//! function runs, deleting each message only after its replay succeeded.

use std::collections::BTreeSet;
use std::io::Write;

use clap::{Args, ValueEnum};
use serde::Serialize;
use tagrelay::deploy;
use tagrelay::handler::{diagnostic, Diagnostic, Handler};
use tagrelay::ports::{DeadLetter, DeadLetterQueue};
use tagrelay::record::{self, Outcome, PushSummary};
use thiserror::Error;

use crate::context::Context;
use crate::error::CliError;
use crate::report::Render;
use crate::table::{or_nothing, Table};
use crate::time::format_opt;

/// While a replay runs its message stays hidden from other readers (and from our own next
/// receive); a failed one is made visible again at the end.
const HIDE_SECONDS: i32 = 300;

/// Replay the events in a function's dead-letter queue; delete each one only after it
/// succeeded.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[arg(long, value_enum)]
    pub function: Function,
    /// Replay at most N messages (default: until the queue is empty).
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// The dead-letter queue's name or URL (default: tagrelay-<function>-dlq, as infra/ names it).
    #[arg(long, value_name = "NAME_OR_URL")]
    pub queue: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Function {
    RecordImageTag,
    TriggerDeploy,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::RecordImageTag => "record-image-tag",
            Self::TriggerDeploy => "trigger-deploy",
        }
    }

    /// The queue infra/ creates with the default `name_prefix`.
    pub fn default_queue(self) -> String {
        format!("tagrelay-{}-dlq", self.name())
    }
}

impl RedriveArgs {
    /// `progress` gets one line per message as it is replayed (stderr in the command).
    pub async fn run(&self, context: &Context, progress: &mut impl Write) -> Result<RedriveReport, CliError> {
        let queue_name = self.queue.clone().unwrap_or_else(|| self.function.default_queue());
        let queue = context.dead_letter_queue(&queue_name).await?;
        let request = RedriveRequest { function: self.function.name(), queue: queue.url(), max: self.max };
        match self.function {
            Function::RecordImageTag => redrive(&queue, &context.recorder(), request, progress).await,
            Function::TriggerDeploy => redrive(&queue, &context.deployer(), request, progress).await,
        }
    }
}

/// Why a replay failed: the handler's error as Lambda reports it (`error_type` is its
/// `errorType`), or a message body that is no event at all.
#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("the message body is not a JSON event: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("{}", .0.error_message)]
    Failed(Diagnostic),
}

/// A function's response, told in one line (redrive's progress and `DETAIL` column).
pub trait Account {
    fn account(&self) -> String;
}

impl Account for record::Summary {
    fn account(&self) -> String {
        match self {
            Self::Push(summary) => describe_record(summary),
            Self::Sweep(sweep) => {
                let decisions: Vec<String> = sweep
                    .services
                    .iter()
                    .flat_map(|s| s.decisions.iter().map(move |d| (s, d)))
                    .map(|(s, d)| format!("{}/{} {}", s.service, d.environment, describe_outcome(&d.outcome)))
                    .collect();
                format!("scheduled sweep: {}", decisions.join(", "))
            }
        }
    }
}

impl Account for deploy::Summary {
    fn account(&self) -> String {
        if let Some(ignored) = self.ignored {
            return format!("{} ignored {}", self.trigger, ignored.as_str());
        }
        let decisions: Vec<String> = self
            .environments
            .iter()
            .map(|e| {
                let build = e.outcome.build().map(|b| format!(" {b}")).unwrap_or_default();
                format!("{} {} {}{build}", e.environment, e.outcome.as_str(), e.outcome.reason())
            })
            .collect();
        format!("{}: {}", self.trigger, decisions.join(", "))
    }
}

/// Replays one event through the function's own handler, in-process.
pub async fn replay<H: Handler>(handler: &H, body: &str) -> Result<H::Response, ReplayError> {
    let event: serde_json::Value = serde_json::from_str(body)?;
    handler.handle(&event).await.map_err(|err| ReplayError::Failed(diagnostic(&err)))
}

fn describe_record(summary: &PushSummary) -> String {
    let subject = format!("{}:{}", summary.repository, summary.tag.as_deref().unwrap_or(""));
    if let Some(reason) = summary.skipped {
        return format!("{subject} skip {}", reason.as_str());
    }
    let decisions: Vec<String> =
        summary.decisions.iter().map(|d| format!("{} {}", d.environment, describe_outcome(&d.outcome))).collect();
    format!("{subject} {}", decisions.join(", "))
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Write { reason, version, .. } => format!("write {} v{version}", reason.as_str()),
        Outcome::Planned { reason, .. } => format!("would_write {}", reason.as_str()),
        Outcome::Skip { reason } => format!("skip {}", reason.as_str()),
        Outcome::Failed { .. } => "error".to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replayed {
    Replayed,
    FailedAgain,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveEntry {
    pub message_id: String,
    pub sent: Option<String>,
    pub result: Replayed,
    /// What the handler did, or why it failed again.
    pub detail: String,
    /// Why the function failed on it before (Lambda's `ErrorMessage` attribute).
    pub original_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveReport {
    pub function: String,
    pub queue: String,
    pub replayed: usize,
    pub failed_again: usize,
    pub messages: Vec<RedriveEntry>,
}

pub struct RedriveRequest<'a> {
    pub function: &'a str,
    pub queue: &'a str,
    pub max: Option<usize>,
}

/// Replays up to `max` messages. `progress` gets one line per message (stderr in the command).
pub async fn redrive<Q, H, W>(
    queue: &Q,
    handler: &H,
    request: RedriveRequest<'_>,
    progress: &mut W,
) -> Result<RedriveReport, CliError>
where
    Q: DeadLetterQueue + Sync,
    H: Handler,
    H::Response: Account,
    W: Write,
{
    let max = request.max.unwrap_or(usize::MAX);
    let mut seen = BTreeSet::new();
    let mut failed = Vec::new();
    let mut report = RedriveReport {
        function: request.function.to_owned(),
        queue: request.queue.to_owned(),
        replayed: 0,
        failed_again: 0,
        messages: Vec::new(),
    };
    let outcome = async {
        while report.messages.len() < max {
            let batch = queue.receive(max - report.messages.len(), HIDE_SECONDS).await?;
            let fresh: Vec<DeadLetter> = batch.into_iter().filter(|m| seen.insert(m.message_id.clone())).collect();
            if fresh.is_empty() {
                break;
            }
            for message in fresh {
                let entry = replay_one(queue, handler, &message).await?;
                let position = report.messages.len() + 1;
                writeln!(
                    progress,
                    "[{position}] {} {}: {}",
                    message.message_id,
                    result_name(entry.result),
                    entry.detail
                )?;
                match entry.result {
                    Replayed::Replayed => report.replayed += 1,
                    Replayed::FailedAgain => {
                        report.failed_again += 1;
                        failed.push(message);
                    }
                }
                report.messages.push(entry);
            }
        }
        Ok::<(), CliError>(())
    }
    .await;
    // Whatever happened, the messages that failed again go back in the queue at once.
    for message in &failed {
        queue.release(message).await?;
    }
    outcome?;
    Ok(report)
}

async fn replay_one<Q, H>(queue: &Q, handler: &H, message: &DeadLetter) -> Result<RedriveEntry, CliError>
where
    Q: DeadLetterQueue + Sync,
    H: Handler,
    H::Response: Account,
{
    let (result, detail) = match replay(handler, &message.body).await {
        Ok(response) => {
            // Deleted only now: a crash before this line leaves the message to be replayed again,
            // which is harmless (every write is idempotent).
            queue.delete(message).await?;
            (Replayed::Replayed, response.account())
        }
        Err(error) => (Replayed::FailedAgain, error.to_string()),
    };
    Ok(RedriveEntry {
        message_id: message.message_id.clone(),
        sent: format_opt(message.sent_at),
        result,
        detail,
        original_error: message.error_message.clone(),
    })
}

fn result_name(result: Replayed) -> &'static str {
    match result {
        Replayed::Replayed => "replayed",
        Replayed::FailedAgain => "failed again",
    }
}

impl Render for RedriveReport {
    fn problems(&self) -> Vec<String> {
        if self.failed_again == 0 {
            return Vec::new();
        }
        vec![format!(
            "{} of {} messages failed again and are back in {}",
            self.failed_again,
            self.messages.len(),
            self.queue
        )]
    }

    fn render(&self) -> String {
        let mut table = Table::new(&["MESSAGE", "SENT", "RESULT", "DETAIL"]);
        for m in &self.messages {
            table.row([
                m.message_id.clone(),
                or_nothing(m.sent.as_ref()),
                result_name(m.result).to_owned(),
                m.detail.clone(),
            ]);
        }
        let totals = format!(
            "{}: {} replayed, {} failed again ({})\n",
            self.function, self.replayed, self.failed_again, self.queue
        );
        if table.is_empty() {
            return totals;
        }
        format!("{}\n{totals}", table.render())
    }
}
