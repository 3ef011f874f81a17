//! The in-memory backend (the default), with an optional journal (`--journal FILE`).
//! Changes are applied in the order they were submitted, at the end of the loop turn, so a
//! response and the updates it causes leave in the same turn. With a journal, the turn's
//! changes are written and synced in one go before anything of the turn is answered; if
//! that fails they are taken back and every request of the turn is refused (503).

use crate::log::Log;
use crate::state::journal::{Journal, Opened};
use crate::state::record::Change;
use crate::state::{Applied, Backend, Catalog, CategoryId, Done, Op, Refusal, Ticket, Update};

/// The state in this process's memory, and on disk when there is a journal.
#[derive(Debug)]
pub struct Memory {
    catalog: Catalog,
    journal: Option<Journal>,
    /// Submitted this turn, not applied yet.
    submitted: Vec<(Option<Ticket>, Op)>,
    /// Applied this turn, with what takes each change back if the turn cannot be made
    /// durable.
    turn: Vec<Applying>,
    done: Vec<Done>,
    updates: Vec<Update>,
    /// The disk error being reported: logged once, until writes succeed again.
    failing: Option<String>,
}

/// A change of this turn: who waits for it, what it did, and what takes it back.
type Applying = (Option<Ticket>, Result<Applied, Refusal>, Option<Undo>);

/// What takes an applied change back.
#[derive(Debug)]
enum Undo {
    Total { id: String, total: u64 },
    Product(CategoryId),
}

impl Memory {
    /// The state in memory only: nothing is written anywhere.
    pub fn new(catalog: Catalog) -> Memory {
        Memory {
            catalog,
            journal: None,
            submitted: Vec::new(),
            turn: Vec::new(),
            done: Vec::new(),
            updates: Vec::new(),
            failing: None,
        }
    }

    /// The state replayed from the journal at `path` (created if missing) on top of `base`,
    /// kept there from now on. See [`Journal::open`] for what refuses to start.
    pub fn with_journal(
        path: &std::path::Path,
        base: Catalog,
        data_id: u32,
        compact_bytes: u64,
    ) -> Result<(Memory, Opened), String> {
        let (journal, catalog, opened) = Journal::open(path, base, data_id, compact_bytes)?;
        let mut memory = Memory::new(catalog);
        memory.journal = Some(journal);
        Ok((memory, opened))
    }

    /// Every request of this turn is refused with `why`, and nothing is applied.
    fn refuse_turn(&mut self, why: &str) {
        for (ticket, _) in self.submitted.drain(..) {
            if let Some(ticket) = ticket {
                self.done
                    .push((ticket, Err(Refusal::Unavailable(why.to_string()))));
            }
        }
    }

    /// Logs the first failure of an episode (the next ones are its sequel).
    fn report_failure(&mut self, log: &mut Log, e: String) {
        if self.failing.is_none() {
            log.error(format_args!(
                "{e}; changes are refused (503) until it can write"
            ));
        }
        self.failing = Some(e);
    }
}

impl Backend for Memory {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn submit(&mut self, ticket: Option<Ticket>, op: Op) {
        self.submitted.push((ticket, op));
    }

    fn before_sleep(&mut self, log: &mut Log) {
        if self.submitted.is_empty() {
            return;
        }
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.ready(&self.catalog)
        {
            self.refuse_turn("the change could not be written to disk; try again shortly");
            return self.report_failure(log, e);
        }
        for (ticket, op) in self.submitted.drain(..) {
            let (result, undo) = apply(&mut self.catalog, op, self.journal.as_mut());
            self.turn.push((ticket, result, undo));
        }
        let committed = self.journal.as_mut().map_or(Ok(()), Journal::commit);
        if let Err(e) = committed {
            for (ticket, _, undo) in self.turn.drain(..).rev() {
                match undo {
                    Some(Undo::Total { id, total }) => self.catalog.restore_total(&id, total),
                    Some(Undo::Product(cat)) => self.catalog.remove_newest_product(cat),
                    None => {}
                }
                if let Some(ticket) = ticket {
                    let why = "the change could not be written to disk; try again shortly";
                    self.done
                        .push((ticket, Err(Refusal::Unavailable(why.to_string()))));
                }
            }
            // Taken back in reverse; answered in order.
            self.done.reverse();
            return self.report_failure(log, e);
        }
        if self.failing.take().is_some() {
            log.info(format_args!("journal: writing again"));
        }
        for (ticket, result, _) in self.turn.drain(..) {
            if let Ok(applied) = &result {
                let (category, id, total) = match applied {
                    Applied::Total {
                        category,
                        id,
                        total,
                    } => (*category, id, *total),
                    Applied::Product { category, id } => (*category, id, 0),
                };
                self.updates.push(Update {
                    category,
                    id: id.clone(),
                    total,
                });
            }
            if let Some(ticket) = ticket {
                self.done.push((ticket, result));
            }
        }
        if let Some(journal) = &mut self.journal {
            match journal.compact_if_due(&self.catalog) {
                Ok(true) => log.info(format_args!("journal: compacted into a snapshot")),
                Ok(false) => {}
                Err(e) => log.warn(format_args!("journal: compaction failed: {e}")),
            }
        }
    }

    fn drain(&mut self, done: &mut Vec<Done>, updates: &mut Vec<Update>) {
        done.append(&mut self.done);
        updates.append(&mut self.updates);
    }

    fn health(&self) -> Result<(), String> {
        match &self.failing {
            None => Ok(()),
            Some(e) => Err(format!("changes are refused: {e}")),
        }
    }

    fn report(&self, log: &mut Log) {
        if let Some(journal) = &self.journal {
            let s = journal.stats;
            log.info(format_args!(
                "journal: {} records in {} writes, {:.1} per fsync; {} compactions",
                s.records,
                s.commits,
                s.records as f64 / s.commits.max(1) as f64,
                s.compactions
            ));
        }
    }
}

/// Applies one change to the catalog; with a journal, records it in the turn's batch and
/// says how to take it back.
fn apply(
    catalog: &mut Catalog,
    op: Op,
    journal: Option<&mut Journal>,
) -> (Result<Applied, Refusal>, Option<Undo>) {
    match op {
        Op::AddAmount { id, amount } => {
            let before = catalog.total(&id);
            let (category, total) = match catalog.add_amount(&id, amount) {
                Ok(applied) => applied,
                Err(refusal) => return (Err(refusal), None),
            };
            let undo = journal.map(|j| {
                j.record(Change::Order {
                    id: id.clone(),
                    amount,
                    total,
                });
                Undo::Total {
                    id: id.clone(),
                    total: before.unwrap_or(0),
                }
            });
            (
                Ok(Applied::Total {
                    category,
                    id,
                    total,
                }),
                undo,
            )
        }
        Op::AddProduct { category, product } => {
            let name = catalog.category_name(category).to_string();
            let p = match catalog.add_product(category, product) {
                Ok(p) => p.clone(),
                Err(refusal) => return (Err(refusal), None),
            };
            let undo = journal.map(|j| {
                j.record(Change::Product {
                    category: name,
                    id: p.id.clone(),
                    name: p.name,
                    rrp: p.rrp,
                    info: p.info,
                });
                Undo::Product(category)
            });
            (Ok(Applied::Product { category, id: p.id }), undo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NewProduct;

    fn ticket(key: usize) -> Option<Ticket> {
        Some(Ticket { key, conn_id: 7 })
    }

    #[test]
    fn changes_apply_in_order_at_the_end_of_the_turn() {
        let mut m = Memory::new(Catalog::with_defaults());
        let mut log = Log::new(crate::log::Level::Off);
        let el = m.catalog().category("electronics").unwrap();
        m.submit(
            ticket(1),
            Op::AddAmount {
                id: "A1".into(),
                amount: 10,
            },
        );
        m.submit(
            None,
            Op::AddAmount {
                id: "A1".into(),
                amount: -20,
            },
        );
        m.submit(
            ticket(2),
            Op::AddAmount {
                id: "Z9".into(),
                amount: 1,
            },
        );
        let product = NewProduct {
            name: "Fan".into(),
            rrp: "1.00".into(),
            info: "Cool.".into(),
        };
        m.submit(
            ticket(3),
            Op::AddProduct {
                category: el,
                product,
            },
        );
        // Nothing is applied or finished before the end of the turn.
        let (mut done, mut updates) = (Vec::new(), Vec::new());
        m.drain(&mut done, &mut updates);
        assert!(done.is_empty() && updates.is_empty());
        assert_eq!(m.catalog().products(el)[0].total, 3);

        m.before_sleep(&mut log);
        m.drain(&mut done, &mut updates);
        let keys: Vec<usize> = done.iter().map(|(t, _)| t.key).collect();
        assert_eq!(keys, [1, 2, 3], "the simulator's change has no ticket");
        assert_eq!(
            done[0].1,
            Ok(Applied::Total {
                category: el,
                id: "A1".into(),
                total: 13
            })
        );
        assert_eq!(done[1].1, Err(Refusal::UnknownProduct("Z9".into())));
        assert_eq!(
            done[2].1,
            Ok(Applied::Product {
                category: el,
                id: "A3".into()
            })
        );
        let totals: Vec<(&str, u64)> = updates.iter().map(|u| (u.id.as_str(), u.total)).collect();
        // -20 from 13 would go below 0: refused, no update.
        assert_eq!(totals, [("A1", 13), ("A3", 0)]);
        assert_eq!(m.catalog().products(el)[0].total, 13);
    }
}
