//! Connection slots. Each open connection holds one, and at the cap a new connection waits for
//! one. A connection that is only reading (waiting for a request's headers, or for its body) holds
//! its slot on loan: when a new connection finds no free slot, the connection that has been
//! reading longest is closed to make room. So slow or silent sockets cannot keep the server
//! full for their whole read deadlines; a connection whose request is being answered keeps
//! its slot.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub struct Slots {
    free: Arc<Semaphore>,
    /// Connections that are reading, oldest reader first.
    readers: Mutex<Readers>,
}

#[derive(Default)]
struct Readers {
    by_age: BTreeMap<u64, Arc<Notify>>,
    next: u64,
}

/// One connection's slot, and its place in the readers' queue while it reads.
pub struct Slot {
    slots: Arc<Slots>,
    _permit: OwnedSemaphorePermit,
    place: Mutex<Option<u64>>,
    evicted: Arc<Notify>,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Arc::new(Semaphore::new(max)),
            readers: Mutex::default(),
        })
    }

    /// A slot for a new connection: a free one, or the longest reader's. Waits while every
    /// slot is answering a request.
    pub async fn take(self: &Arc<Self>) -> Arc<Slot> {
        let permit = match self.free.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.evict_longest_reader() {
                    tracing::debug!(
                        "connection cap reached: closed the longest-reading connection"
                    );
                }
                self.free
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed")
            }
        };
        let slot = Arc::new(Slot {
            slots: self.clone(),
            _permit: permit,
            place: Mutex::new(None),
            evicted: Arc::new(Notify::new()),
        });
        slot.reading();
        slot
    }

    fn evict_longest_reader(&self) -> bool {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, evicted)) = readers.by_age.pop_first() else {
            return false;
        };
        evicted.notify_one();
        true
    }
}

impl Slot {
    /// From now on the connection only reads: its slot may be taken.
    pub fn reading(&self) {
        let mut readers = self.slots.readers.lock().unwrap_or_else(|e| e.into_inner());
        let mut place = self.place.lock().unwrap_or_else(|e| e.into_inner());
        if place.is_none() {
            let age = readers.next;
            readers.next += 1;
            readers.by_age.insert(age, self.evicted.clone());
            *place = Some(age);
        }
    }

    /// From now on the connection answers a request: it keeps its slot. False if the slot
    /// was already taken (the connection is being closed).
    pub fn answering(&self) -> bool {
        let mut readers = self.slots.readers.lock().unwrap_or_else(|e| e.into_inner());
        let mut place = self.place.lock().unwrap_or_else(|e| e.into_inner());
        match place.take() {
            Some(age) => readers.by_age.remove(&age).is_some(),
            None => true,
        }
    }

    /// Resolves when the slot was taken for a new connection.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let place = *self.place.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(age) = place {
            let mut readers = self.slots.readers.lock().unwrap_or_else(|e| e.into_inner());
            readers.by_age.remove(&age);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_connection_takes_the_longest_readers_slot_not_an_answering_one() {
        let slots = Slots::new(2);
        let (first, second) = (slots.take().await, slots.take().await);
        assert!(first.answering(), "answering: keeps its slot");
        let taking = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        // The only reader is told to go; its slot is free once it is dropped.
        second.evicted().await;
        assert!(
            !second.answering(),
            "an evicted reader cannot start answering"
        );
        drop(second);
        let third = taking.await.unwrap();
        // The third answers; the first, reading again after its answer, is the only reader.
        assert!(third.answering());
        first.reading();
        let fourth = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        first.evicted().await;
        drop(first);
        let _ = (third, fourth.await.unwrap());
    }
}
