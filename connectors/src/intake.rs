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
    /// What the citizen types with the tracking code to see the answer, rate it or reopen it
    /// (`GET /api/v1/track/{code}`); present when the intake has a secret key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
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
    secret_key: Option<[u8; 32]>,
}

/// Crockford base-32 without the look-alikes, as tracking codes use.
const SECRET_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a citizen's secret (50 bits).
const SECRET_LEN: usize = 10;

/// The secret for petition `id` under `key`: HMAC-SHA-256(key, id) in 10 base-32 characters.
pub fn citizen_secret(key: &[u8; 32], id: &Uuid) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    let tag = mac.finalize().into_bytes();
    let bits = u64::from_be_bytes(tag[..8].try_into().expect("8 bytes"));
    (0..SECRET_LEN).map(|i| SECRET_ALPHABET[((bits >> (59 - 5 * i)) & 0x1f) as usize] as char).collect()
}

/// Compares a typed secret with the expected one in constant time (case and dashes ignored).
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let given: Vec<u8> = given.bytes().filter(|b| !matches!(b, b'-' | b' ')).map(|b| b.to_ascii_uppercase()).collect();
    given.len() == expected.len() && given.iter().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Reads the data directory's secret key, creating it (32 random bytes, hex) on first use.
pub fn load_or_create_secret_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use rand::RngCore;
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        let mut key = [0u8; 32];
        if text.len() == 64 {
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            }
            return Ok(key);
        }
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the secret key is not 64 hex digits"));
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(path, hex)?;
    Ok(key)
}

impl Intake {
    pub fn new(log: Arc<dyn EventLog>) -> Intake {
        Intake { log, units: Units::embedded(), seen: Mutex::new(HashMap::new()), secret_key: None }
    }

    /// Gives every receipt a citizen's secret derived with `key`.
    pub fn with_secret_key(mut self, key: [u8; 32]) -> Intake {
        self.secret_key = Some(key);
        self
    }

    /// The citizen's secret of petition `id`, when this intake has a key.
    pub fn citizen_secret(&self, id: &Uuid) -> Option<String> {
        self.secret_key.as_ref().map(|key| citizen_secret(key, id))
    }

    /// The receipt of an accepted petition, with the citizen's secret.
    pub fn receipt(&self, petition: &Petition) -> Receipt {
        Receipt { secret: self.citizen_secret(&petition.id), ..receipt_of(petition) }
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
        let receipt = self.receipt(&petition);
        let record = Record { key: petition.id.to_string().into_bytes(), payload: petition.to_json_bytes() };
        self.log.append(Topic::Petitions, vec![record]).await.map_err(|err| match err {
            LogError::Unavailable(reason) | LogError::Fatal(reason) => IntakeError::Unavailable(reason),
        })?;
        Ok(receipt)
    }
}

/// The receipt of an accepted petition.
pub fn receipt_of(petition: &Petition) -> Receipt {
    Receipt { id: petition.id, tracking_code: petition.tracking_code.clone(), status: "received", secret: None }
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
