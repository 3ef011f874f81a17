//! The in-memory backend (the default): the catalog in this process, nothing written
//! anywhere. Changes are applied in the order they were submitted, at the end of the loop
//! turn, so a response and the updates it causes leave in the same turn.

use crate::state::{Applied, Backend, Catalog, Done, Op, Ticket, Update};

/// The state in this process's memory.
#[derive(Debug)]
pub struct Memory {
    catalog: Catalog,
    /// Submitted this turn, not applied yet.
    submitted: Vec<(Option<Ticket>, Op)>,
    done: Vec<Done>,
    updates: Vec<Update>,
}

impl Memory {
    pub fn new(catalog: Catalog) -> Memory {
        Memory {
            catalog,
            submitted: Vec::new(),
            done: Vec::new(),
            updates: Vec::new(),
        }
    }
}

impl Backend for Memory {
    fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn submit(&mut self, ticket: Option<Ticket>, op: Op) {
        self.submitted.push((ticket, op));
    }

    fn before_sleep(&mut self) {
        for (ticket, op) in self.submitted.drain(..) {
            let result = apply(&mut self.catalog, op);
            if let Ok(applied) = &result {
                self.updates.push(match applied {
                    Applied::Total {
                        category,
                        id,
                        total,
                    } => Update {
                        category: *category,
                        id: id.clone(),
                        total: *total,
                    },
                    Applied::Product { category, id } => Update {
                        category: *category,
                        id: id.clone(),
                        total: 0,
                    },
                });
            }
            if let Some(ticket) = ticket {
                self.done.push((ticket, result));
            }
        }
    }

    fn drain(&mut self, done: &mut Vec<Done>, updates: &mut Vec<Update>) {
        done.append(&mut self.done);
        updates.append(&mut self.updates);
    }
}

/// Applies one change to the catalog.
pub fn apply(catalog: &mut Catalog, op: Op) -> Result<Applied, crate::state::Refusal> {
    match op {
        Op::AddAmount { id, amount } => {
            let (category, total) = catalog.add_amount(&id, amount)?;
            Ok(Applied::Total {
                category,
                id,
                total,
            })
        }
        Op::AddProduct { category, product } => {
            let id = catalog.add_product(category, product)?.id.clone();
            Ok(Applied::Product { category, id })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{NewProduct, Refusal};

    fn ticket(key: usize) -> Option<Ticket> {
        Some(Ticket { key, conn_id: 7 })
    }

    #[test]
    fn changes_apply_in_order_at_the_end_of_the_turn() {
        let mut m = Memory::new(Catalog::with_defaults());
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

        m.before_sleep();
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
