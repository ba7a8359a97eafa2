//! HTTP-agnostic intake: a submission becomes a durable event on the log, exactly once per
//! `(channel, external_id)`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;
use voxpop_pipeline::{EventLog, LogError, Record, Topic};
use voxpop_schema::{Channel, FieldError, Petition, Submission, Units};

/// What the citizen (or the sending system) gets back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub id: Uuid,
    pub tracking_code: String,
    pub status: &'static str,
}

/// The outcome of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A new petition, durable on the log.
    Created(Receipt),
    /// The same `(channel, external_id)` was accepted before: its first receipt.
    Duplicate(Receipt),
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The sender's fault: every problem, each with its field.
    #[error("invalid submission: {} problem(s)", .0.len())]
    Invalid(Vec<FieldError>),
    /// The log cannot take the petition now; nothing was accepted.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
}

pub type IntakeResult<T> = Result<T, IntakeError>;

type DedupKey = (Channel, String);

enum Slot {
    /// Being appended by another request: wait for its outcome.
    Pending(watch::Receiver<Option<Receipt>>),
    Done(Receipt),
}

/// Validates submissions and appends them to the log; answers only once the log says durable.
pub struct Intake {
    log: Arc<dyn EventLog>,
    units: &'static Units,
    seen: Mutex<HashMap<DedupKey, Slot>>,
}

impl Intake {
    pub fn new(log: Arc<dyn EventLog>) -> Intake {
        Intake { log, units: Units::embedded(), seen: Mutex::new(HashMap::new()) }
    }

    /// Remembers petitions accepted before this process started (from the lake and the part of
    /// the log the lake has not taken yet), so their external ids stay deduplicated.
    pub fn remember(&self, petitions: impl IntoIterator<Item = (Channel, String, Receipt)>) -> usize {
        let mut seen = self.seen.lock().expect("intake lock");
        let before = seen.len();
        for (channel, external_id, receipt) in petitions {
            seen.entry((channel, external_id)).or_insert(Slot::Done(receipt));
        }
        seen.len() - before
    }

    /// Validates raw JSON bytes and accepts the petition.
    pub async fn submit_json(&self, bytes: &[u8]) -> IntakeResult<Accepted> {
        let submission = Submission::from_json_bytes(bytes, self.units, Utc::now()).map_err(IntakeError::Invalid)?;
        self.submit(submission).await
    }

    /// Accepts a validated submission: durable on the log before this returns `Ok`.
    pub async fn submit(&self, submission: Submission) -> IntakeResult<Accepted> {
        let Some(external_id) = submission.external_id.clone() else {
            return self.append(submission).await.map(Accepted::Created);
        };
        let key = (submission.channel, external_id);
        loop {
            let claim = {
                let mut seen = self.seen.lock().expect("intake lock");
                match seen.get(&key) {
                    Some(Slot::Done(receipt)) => return Ok(Accepted::Duplicate(receipt.clone())),
                    Some(Slot::Pending(receiver)) => Err(receiver.clone()),
                    None => {
                        let (sender, receiver) = watch::channel(None);
                        seen.insert(key.clone(), Slot::Pending(receiver));
                        Ok(sender)
                    }
                }
            };
            let mut waiting = match claim {
                Ok(sender) => return self.append_claimed(submission, key, sender).await,
                Err(receiver) => receiver,
            };
            // The other request either publishes its receipt or drops the sender on failure,
            // in which case this one tries again (and may take the claim itself).
            if waiting.wait_for(Option::is_some).await.is_ok()
                && let Some(receipt) = waiting.borrow().clone()
            {
                return Ok(Accepted::Duplicate(receipt));
            }
        }
    }

    async fn append_claimed(
        &self,
        submission: Submission,
        key: DedupKey,
        sender: watch::Sender<Option<Receipt>>,
    ) -> IntakeResult<Accepted> {
        let outcome = self.append(submission).await;
        {
            let mut seen = self.seen.lock().expect("intake lock");
            match &outcome {
                Ok(receipt) => {
                    seen.insert(key, Slot::Done(receipt.clone()));
                }
                Err(_) => {
                    seen.remove(&key);
                }
            }
        }
        if let Ok(receipt) = &outcome {
            let _ = sender.send(Some(receipt.clone()));
        }
        outcome.map(Accepted::Created)
    }

    async fn append(&self, submission: Submission) -> IntakeResult<Receipt> {
        // Imported and demo records keep the time the original system received them; everything
        // else is received now.
        let received_at = match submission.channel {
            Channel::Import | Channel::Demo => submission.submitted_at.unwrap_or_else(Utc::now),
            _ => Utc::now(),
        };
        let petition = submission.accept(received_at);
        let receipt = receipt_of(&petition);
        let record = Record { key: petition.id.to_string().into_bytes(), payload: petition.to_json_bytes() };
        self.log.append(Topic::Petitions, vec![record]).await.map_err(|err| match err {
            LogError::Unavailable(reason) | LogError::Fatal(reason) => IntakeError::Unavailable(reason),
        })?;
        Ok(receipt)
    }
}

/// The receipt of an accepted petition.
pub fn receipt_of(petition: &Petition) -> Receipt {
    Receipt { id: petition.id, tracking_code: petition.tracking_code.clone(), status: "received" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxpop_pipeline::embedded::EmbeddedLog;

    #[tokio::test(flavor = "multi_thread")]
    async fn duplicate_external_ids_return_the_first_petition() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(dir.path()).await.unwrap());
        let intake = Arc::new(Intake::new(log.clone()));
        let body =
            r#"{"title":"Bãi rác","body":"Mùi hôi","commune_code":"00004","external_id":"x-1","channel":"mobile"}"#
                .as_bytes();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let intake = intake.clone();
            tasks.push(tokio::spawn(async move { intake.submit_json(body).await.unwrap() }));
        }
        let mut created = Vec::new();
        let mut duplicates = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Accepted::Created(receipt) => created.push(receipt),
                Accepted::Duplicate(receipt) => duplicates.push(receipt),
            }
        }
        assert_eq!(created.len(), 1);
        assert_eq!(duplicates.len(), 7);
        assert!(duplicates.iter().all(|r| r == &created[0]));
        // Same external id on another channel is another petition.
        let other =
            r#"{"title":"Bãi rác","body":"Mùi hôi","commune_code":"00004","external_id":"x-1","channel":"web"}"#
                .as_bytes();
        assert!(matches!(intake.submit_json(other).await.unwrap(), Accepted::Created(_)));
        let mut reader = log.reader(Topic::Petitions, &Default::default()).await.unwrap();
        let records = reader.poll(100, std::time::Duration::from_millis(200)).await.unwrap();
        assert_eq!(records.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn invalid_submissions_name_their_fields_and_append_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(dir.path()).await.unwrap());
        let intake = Intake::new(log.clone());
        let Err(IntakeError::Invalid(errors)) = intake.submit_json(br#"{"title":"t","commune_code":"99999"}"#).await
        else {
            panic!("expected a validation error");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"body") && fields.contains(&"commune_code"), "{fields:?}");
        let mut reader = log.reader(Topic::Petitions, &Default::default()).await.unwrap();
        assert!(reader.poll(10, std::time::Duration::from_millis(100)).await.unwrap().is_empty());
    }
}
