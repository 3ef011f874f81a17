//! The state behind the API: the catalog and its rules ([`catalog`]), and the backends that
//! hold it. Every change goes one way, whichever backend holds the state:
//!
//! ```text
//! routes: Apply(op) -> backend.submit(ticket, op) -> (the backend applies it, when it can)
//!        -> backend.drain(done, updates) -> done: the held response for `ticket` is answered
//!                                        -> updates: the only way into the fan-out
//! ```
//!
//! Reads (`GET`s, a new subscriber's first totals) are served from the backend's
//! [`Catalog`] at once. [`memory`] applies changes at the end of the loop turn they were
//! submitted in, and with a [`journal`] makes them durable before they are answered.

pub mod catalog;
pub mod journal;
pub mod memory;
pub mod record;
pub mod redis;

pub use catalog::{Catalog, CategoryId, MAX_TOTAL, NewProduct, Product, Refusal};
pub use memory::Memory;

use std::time::Instant;

use mio::{Registry, Token};

use crate::log::Log;

/// Names the response a result belongs to: the connection's slab key and its connection
/// id. Slab keys are reused, so a result whose connection has closed must be dropped,
/// never written to the next connection in that slot: the id tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub key: usize,
    pub conn_id: u64,
}

/// A change to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `POST /orders/<id>`: add `amount` to the product's total.
    AddAmount { id: String, amount: i64 },
    /// `POST /<category>`: add a product with the next free id and a total of 0.
    AddProduct {
        category: CategoryId,
        product: NewProduct,
    },
}

/// What an applied change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A product's total is now `total`.
    Total {
        category: CategoryId,
        id: String,
        total: u64,
    },
    /// A product was added to `category` with this id.
    Product { category: CategoryId, id: String },
}

/// A product's new total, for its category's subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub category: CategoryId,
    pub id: String,
    pub total: u64,
}

/// A finished change: the ticket of the request that asked for it, and what happened.
pub type Done = (Ticket, Result<Applied, Refusal>);

/// Where the state lives. The loop submits changes as requests ask for them, calls
/// [`Backend::before_sleep`] once per turn before it writes anything, then drains what is
/// finished.
pub trait Backend: std::fmt::Debug + Send {
    /// The catalog as this process knows it, for reads.
    fn catalog(&self) -> &Catalog;

    /// Asks for a change. `ticket` is the request waiting for it (`None`: nobody waits,
    /// the simulator). Its result comes out of [`Backend::drain`], never before.
    fn submit(&mut self, ticket: Option<Ticket>, op: Op);

    /// As [`Backend::submit`], for a change the client named (`Idempotency-Key`): a
    /// backend whose answer can be lost (Redis) applies a change of one name once.
    /// Backends that always answer ignore the name.
    fn submit_named(&mut self, ticket: Option<Ticket>, op: Op, _name: &str) {
        self.submit(ticket, op);
    }

    /// Work to finish before the loop writes its responses (applying, persisting). What
    /// went wrong is logged here, once per episode.
    fn before_sleep(&mut self, log: &mut Log);

    /// Moves finished changes to `done` (those with a ticket) and every resulting change
    /// of a total to `updates`, in the order they were applied.
    fn drain(&mut self, done: &mut Vec<Done>, updates: &mut Vec<Update>);

    /// Logs what the backend did, when the server stops.
    fn report(&self, log: &mut Log);

    /// `Err` saying why while changes cannot be applied (`GET /healthz` answers 503).
    fn health(&self) -> Result<(), String>;

    /// Puts the backend's own sockets on the loop's poll (Redis's links), with tokens of
    /// its own (see `state::redis::COMMANDS`).
    fn register(&mut self, _registry: &Registry) -> std::io::Result<()> {
        Ok(())
    }

    /// An event on one of the backend's tokens.
    fn ready(&mut self, _token: Token, _writable: bool, _now: Instant, _log: &mut Log) {}

    /// When the backend needs the loop next (a reconnect, a deadline), if ever.
    fn wakeup(&self) -> Option<Instant> {
        None
    }

    /// Time-driven work (reconnecting, refusing what waited too long), once per turn.
    fn tick(&mut self, _registry: &Registry, _now: Instant, _log: &mut Log) {}
}
