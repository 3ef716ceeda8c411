//! The in-process event bus.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};

use hyperion_core::{Event, EventKind};

/// Hands each published event to every subscriber of its kind (or of all kinds), in publication
/// order. Subscribers read from an unbounded channel, so a slow one never blocks the study; a
/// dropped receiver is forgotten at the next publication.
#[derive(Debug, Default)]
pub struct EventBus {
    subscribers: Mutex<Vec<(Option<EventKind>, Sender<Event>)>>,
}

impl EventBus {
    /// Events of one kind.
    pub fn subscribe(&self, kind: EventKind) -> Receiver<Event> {
        self.add(Some(kind))
    }

    /// Every event.
    pub fn subscribe_all(&self) -> Receiver<Event> {
        self.add(None)
    }

    fn add(&self, kind: Option<EventKind>) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, tx));
        rx
    }

    pub fn publish(&self, event: &Event) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        if subscribers.is_empty() {
            return;
        }
        let kind = event.kind();
        subscribers
            .retain(|(want, tx)| want.is_some_and(|w| w != kind) || tx.send(event.clone()).is_ok());
    }
}
