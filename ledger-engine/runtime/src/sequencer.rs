//! Group commit for events pushed one at a time (the API): concurrent submissions to a channel
//! are sequenced into one batch, so they share one transaction and one signed checkpoint. The
//! first caller to find no batch in progress becomes the leader and appends whatever has queued
//! up, batch after batch, until the queue is empty; the others wait for their result.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ledgerbridge_ledger_core::entry::EntryKind;

use crate::channel::{Appended, NewEntry};
use crate::{Ledger, LedgerError, Result, lock};

/// Most events sequenced into one batch.
const MAX_GROUP: usize = 5_000;

type Reply = mpsc::Sender<Result<Appended>>;

#[derive(Default)]
pub(crate) struct Group {
    queue: Mutex<(Vec<(NewEntry, Reply)>, bool)>,
}

/// Held by the leader while it sequences; if the leader panics, releases leadership and fails
/// what is queued.
struct Leader<'a>(&'a Group);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        // On the normal path the loop has already handed leadership back under the lock.
        if std::thread::panicking() {
            let mut q = lock(&self.0.queue);
            for (_, reply) in q.0.drain(..) {
                let _ = reply.send(Err(LedgerError::Unavailable("the sequencer failed".into())));
            }
            q.1 = false;
        }
    }
}

/// Checks the fields of a submission on its own, so that one bad event never fails the others
/// sequenced with it.
fn validate(channel: &str, e: &NewEntry) -> Result<()> {
    e.entry(channel, EntryKind::Event, [0; 32], 0)
        .validate()
        .map_err(|mut errors| LedgerError::Entry {
            position: 0,
            source: errors.remove(0),
        })
}

/// A failure shared by every event of a batch, given to each of them.
fn shared(e: &LedgerError) -> LedgerError {
    match e {
        LedgerError::UnknownChannel(c) => LedgerError::UnknownChannel(c.clone()),
        LedgerError::Store(s) => LedgerError::Unavailable(s.to_string()),
        other => LedgerError::Corrupt(other.to_string()),
    }
}

impl Ledger {
    fn group(&self, channel: &str) -> Arc<Group> {
        let mut groups = lock(&self.groups);
        Arc::clone(groups.entry(channel.to_owned()).or_default())
    }

    /// Anchors one event with group commit: returns once it is durable and covered by a signed
    /// checkpoint, sharing the transaction with whatever else was submitted meanwhile.
    ///
    /// # Errors
    /// An invalid field (this event only), an unknown channel, or a store failure.
    pub fn submit(&self, channel: &str, event: NewEntry) -> Result<Appended> {
        validate(channel, &event)?;
        let group = self.group(channel);
        let (tx, rx) = mpsc::channel();
        {
            let mut q = lock(&group.queue);
            q.0.push((event, tx));
            if q.1 {
                drop(q);
                return rx.recv().unwrap_or_else(|_| {
                    Err(LedgerError::Unavailable("the sequencer stopped".into()))
                });
            }
            q.1 = true;
        }
        // Should the append below panic, hand leadership back and fail what is queued, rather
        // than leave later submitters waiting for a leader that is gone.
        let _leader = Leader(&group);
        loop {
            let items: Vec<(NewEntry, Reply)> = {
                let mut q = lock(&group.queue);
                if q.0.is_empty() {
                    q.1 = false;
                    break;
                }
                let take = q.0.len().min(MAX_GROUP);
                q.0.drain(..take).collect()
            };
            let (events, replies): (Vec<NewEntry>, Vec<Reply>) = items.into_iter().unzip();
            match self.append(channel, &events) {
                Ok((appended, _)) => {
                    for (reply, a) in replies.into_iter().zip(appended) {
                        let _ = reply.send(Ok(a));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(shared(&e)));
                    }
                }
            }
        }
        rx.recv()
            .unwrap_or_else(|_| Err(LedgerError::Unavailable("the sequencer stopped".into())))
    }
}
