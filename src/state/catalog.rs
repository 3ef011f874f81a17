//! The catalog and the order totals: categories, their products, and the rules for adding
//! products and orders. Pure data, no I/O and no HTTP: a change that breaks a rule comes
//! back as a [`Refusal`], which the routes turn into a status.

use std::fmt;

use serde::{Deserialize, Serialize};
use tungstenite::Bytes;

/// The largest total: JSON numbers are read as doubles by browsers, which hold every integer
/// up to 2^53 - 1 exactly.
pub const MAX_TOTAL: u64 = (1 << 53) - 1;

/// Most products one category may hold, so that repeated POSTs cannot grow memory forever.
pub const MAX_PRODUCTS_PER_CATEGORY: usize = 1_000;

/// Index of a category in the catalog; stable for the life of the process.
pub type CategoryId = usize;

/// One product and its running order total.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub rrp: String,
    pub info: String,
    #[serde(default)]
    pub total: u64,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile<P = Product> {
    name: String,
    prefix: String,
    products: Vec<P>,
}

/// A data file, or a snapshot of the state (which also says how many journal records it
/// holds: `seq`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    seq: u64,
    /// Which data the state was first made from (a snapshot's; see `state::journal`).
    #[serde(default)]
    data: Option<u32>,
    categories: Vec<CategoryFile>,
}

/// A category: its URL name, the id prefix of its products, and the products in id order.
#[derive(Debug)]
pub struct Category {
    pub name: String,
    pub prefix: String,
    /// Sorted by the number after the prefix; new products get the highest number plus one.
    products: Vec<Product>,
    /// `products` as `GET /<category>` lists them, serialised whenever the list changes
    /// (totals are not part of it), so that reading it costs no work per request.
    listing: Bytes,
}

impl Category {
    /// Serialises the listing again after `products` changed.
    fn refresh_listing(&mut self) {
        /// The public fields of a product, as `GET /<category>` lists them.
        #[derive(Serialize)]
        struct ProductView<'a> {
            id: &'a str,
            name: &'a str,
            rrp: &'a str,
            info: &'a str,
        }
        let view: Vec<ProductView> = self
            .products
            .iter()
            .map(|p| ProductView {
                id: &p.id,
                name: &p.name,
                rrp: &p.rrp,
                info: &p.info,
            })
            .collect();
        self.listing = serde_json::to_vec(&view).unwrap_or_default().into();
    }
}

/// All categories and products. Totals change only through [`Catalog::add_amount`], new
/// products only through [`Catalog::add_product`].
#[derive(Debug)]
pub struct Catalog {
    categories: Vec<Category>,
}

/// The default catalog: the seed's fixtures.
pub const DEFAULT_DATA: &str = include_str!("../../data/products.json");

/// The fields of a product to add, already checked by the routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub rrp: String,
    pub info: String,
}

/// Why a change was not applied. The state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No product has this id.
    UnknownProduct(String),
    /// The amount would take the product's total outside `0..=MAX_TOTAL`.
    OutOfRange { id: String, total: u64, amount: i64 },
    /// The category holds [`MAX_PRODUCTS_PER_CATEGORY`] products already.
    CategoryFull(String),
    /// The backend cannot make changes now (its disk or its store is failing); saying why.
    Unavailable(String),
    /// The store did not answer in time, after the change was sent: it may or may not have
    /// been applied (a retry could count twice).
    Uncertain(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownProduct(id) => write!(f, "Order {id} not found"),
            Refusal::OutOfRange { id, total, amount } => write!(
                f,
                "amount {amount} would take the total of {id} ({total}) to {}, outside 0..={MAX_TOTAL}",
                i128::from(*total) + i128::from(*amount)
            ),
            Refusal::CategoryFull(name) => write!(
                f,
                "category {name} is full ({MAX_PRODUCTS_PER_CATEGORY} products)"
            ),
            Refusal::Unavailable(why) | Refusal::Uncertain(why) => write!(f, "{why}"),
        }
    }
}

impl Catalog {
    /// Builds the store from JSON in the shape of `data/products.json`, checking every rule
    /// the server relies on (names, prefixes, ids, totals). The error says what is wrong.
    pub fn from_json(text: &str) -> Result<Catalog, String> {
        Catalog::from_snapshot(text).map(|(catalog, _, _)| catalog)
    }

    /// Reads a snapshot written by [`Catalog::snapshot`] (or a data file, as of `seq` 0):
    /// the catalog, the sequence number of the last journal record it holds, and the id
    /// of the data it was first made from.
    pub fn from_snapshot(text: &str) -> Result<(Catalog, u64, Option<u32>), String> {
        let file: CatalogFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut categories: Vec<Category> = Vec::new();
        for c in file.categories {
            if !is_category_name(&c.name) {
                return Err(format!(
                    "category name {:?} must be lowercase letters, digits, '-' or '_', and not one of the routes ({})",
                    c.name,
                    ROUTE_NAMES.join(", ")
                ));
            }
            if c.prefix.is_empty() || !c.prefix.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "category {}: prefix {:?} must be uppercase letters",
                    c.name, c.prefix
                ));
            }
            if categories
                .iter()
                .any(|o| o.name == c.name || o.prefix == c.prefix)
            {
                return Err(format!(
                    "category {}: name or prefix {} used twice",
                    c.name, c.prefix
                ));
            }
            let mut products = c.products;
            for p in &products {
                if id_number(&c.prefix, &p.id).is_none() {
                    return Err(format!(
                        "product {:?} in {}: id must be {} followed by a number without leading zeros",
                        p.id, c.name, c.prefix
                    ));
                }
                if p.total > MAX_TOTAL {
                    return Err(format!(
                        "product {}: total {} is above {MAX_TOTAL}",
                        p.id, p.total
                    ));
                }
            }
            products.sort_by_key(|p| id_number(&c.prefix, &p.id));
            if products.windows(2).any(|w| w[0].id == w[1].id) {
                return Err(format!("category {}: a product id is used twice", c.name));
            }
            let mut category = Category {
                name: c.name,
                prefix: c.prefix,
                products,
                listing: Bytes::new(),
            };
            category.refresh_listing();
            categories.push(category);
        }
        Ok((Catalog { categories }, file.seq, file.data))
    }

    /// The whole state as JSON in the shape of a data file, with totals, `seq` (the
    /// sequence number of the last journal record it holds) and `data` (which data it was
    /// first made from).
    pub fn snapshot(&self, seq: u64, data: u32) -> Vec<u8> {
        #[derive(Serialize)]
        struct Snapshot<'a> {
            seq: u64,
            data: u32,
            categories: Vec<CategoryFile<&'a Product>>,
        }
        let categories = self
            .categories
            .iter()
            .map(|c| CategoryFile {
                name: c.name.clone(),
                prefix: c.prefix.clone(),
                products: c.products.iter().collect(),
            })
            .collect();
        serde_json::to_vec(&Snapshot {
            seq,
            data,
            categories,
        })
        .unwrap_or_default()
    }

    /// The seed's fixtures: electronics (A1, A2) and confectionery (B1).
    pub fn with_defaults() -> Catalog {
        Catalog::from_json(DEFAULT_DATA).expect("data/products.json is valid")
    }

    /// Looks a category up by its URL name.
    pub fn category(&self, name: &str) -> Option<CategoryId> {
        self.categories.iter().position(|c| c.name == name)
    }

    /// The category's name.
    pub fn category_name(&self, cat: CategoryId) -> &str {
        &self.categories[cat].name
    }

    /// The id prefix of the category's products.
    pub fn prefix(&self, cat: CategoryId) -> &str {
        &self.categories[cat].prefix
    }

    /// All category names, in file order.
    pub fn category_names(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().map(|c| c.name.as_str())
    }

    /// The category's products in id order.
    pub fn products(&self, cat: CategoryId) -> &[Product] {
        &self.categories[cat].products
    }

    /// The category's products as the JSON array `[{id,name,rrp,info}]` that
    /// `GET /<category>` answers with. Kept up to date by [`Catalog::add_product`].
    pub fn listing(&self, cat: CategoryId) -> &Bytes {
        &self.categories[cat].listing
    }

    /// How many products there are in all categories.
    pub fn product_count(&self) -> usize {
        self.categories.iter().map(|c| c.products.len()).sum()
    }

    /// Whether a product has this id.
    pub fn contains(&self, id: &str) -> bool {
        self.find(id).is_some()
    }

    /// The category of product `id`.
    pub fn category_of(&self, id: &str) -> Option<CategoryId> {
        self.find(id).map(|(cat, _)| cat)
    }

    /// Finds the product with this id: its category and its index there.
    fn find(&self, id: &str) -> Option<(CategoryId, usize)> {
        self.categories.iter().enumerate().find_map(|(cat, c)| {
            let n = id_number(&c.prefix, id)?;
            let i = c
                .products
                .binary_search_by_key(&Some(n), |p| id_number(&c.prefix, &p.id))
                .ok()?;
            Some((cat, i))
        })
    }

    /// Adds a product to the category. Its id is the prefix plus one more than the highest
    /// number in use; its total starts at 0. Refused when the category is full.
    pub fn add_product(
        &mut self,
        cat: CategoryId,
        product: NewProduct,
    ) -> Result<&Product, Refusal> {
        let c = &mut self.categories[cat];
        if c.products.len() >= MAX_PRODUCTS_PER_CATEGORY {
            return Err(Refusal::CategoryFull(c.name.clone()));
        }
        let next = c
            .products
            .last()
            .and_then(|p| id_number(&c.prefix, &p.id))
            .map_or(1, |n| n + 1);
        let NewProduct { name, rrp, info } = product;
        c.products.push(Product {
            id: format!("{}{next}", c.prefix),
            name,
            rrp,
            info,
            total: 0,
        });
        c.refresh_listing();
        Ok(c.products.last().expect("just pushed"))
    }

    /// Adds `amount` (negative to take orders back) to product `id`. Returns the product's
    /// category and new total; refused for an unknown id, or when the total would leave
    /// `0..=MAX_TOTAL` (and then it is unchanged).
    pub fn add_amount(&mut self, id: &str, amount: i64) -> Result<(CategoryId, u64), Refusal> {
        let Some((cat, i)) = self.find(id) else {
            return Err(Refusal::UnknownProduct(id.to_string()));
        };
        let product = &mut self.categories[cat].products[i];
        let total = i128::from(product.total) + i128::from(amount);
        if !(0..=i128::from(MAX_TOTAL)).contains(&total) {
            return Err(Refusal::OutOfRange {
                id: id.to_string(),
                total: product.total,
                amount,
            });
        }
        product.total = total as u64;
        Ok((cat, product.total))
    }

    /// The total of product `id`.
    pub fn total(&self, id: &str) -> Option<u64> {
        let (cat, i) = self.find(id)?;
        Some(self.categories[cat].products[i].total)
    }

    /// Sets the total of product `id`: put back after a change that was not made durable
    /// (see `state::journal`), or as the store that holds the state says it is (Redis).
    pub fn restore_total(&mut self, id: &str, total: u64) {
        if let Some((cat, i)) = self.find(id) {
            self.categories[cat].products[i].total = total;
        }
    }

    /// Adds a product whose id the store that holds the state chose (Redis), in id order.
    /// False (and nothing changes) when the id is taken or does not fit the category.
    pub fn insert_product(&mut self, cat: CategoryId, product: Product) -> bool {
        let c = &mut self.categories[cat];
        let Some(n) = id_number(&c.prefix, &product.id) else {
            return false;
        };
        let Err(at) = c
            .products
            .binary_search_by_key(&Some(n), |p| id_number(&c.prefix, &p.id))
        else {
            return false;
        };
        c.products.insert(at, product);
        c.refresh_listing();
        true
    }

    /// Replaces the products of `cat` with `products` (the store that holds the state
    /// started the category over). Ids that do not fit the category are left out.
    pub fn replace_products(&mut self, cat: CategoryId, mut products: Vec<Product>) {
        let c = &mut self.categories[cat];
        products.retain(|p| id_number(&c.prefix, &p.id).is_some());
        products.sort_by_key(|p| id_number(&c.prefix, &p.id));
        products.dedup_by(|a, b| a.id == b.id);
        c.products = products;
        c.refresh_listing();
    }

    /// Takes back the newest product of `cat`, added by a change not made durable.
    pub fn remove_newest_product(&mut self, cat: CategoryId) {
        let c = &mut self.categories[cat];
        c.products.pop();
        c.refresh_listing();
    }

    /// The `n`th product across all categories (category order, then id order).
    pub fn nth_product(&self, mut n: usize) -> Option<&Product> {
        for c in &self.categories {
            if n < c.products.len() {
                return Some(&c.products[n]);
            }
            n -= c.products.len();
        }
        None
    }
}

/// The number after `prefix` in `id`, when `id` is exactly `prefix` plus a decimal number
/// without leading zeros.
fn id_number(prefix: &str, id: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?;
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'));
    if valid { digits.parse().ok() } else { None }
}

/// Paths the server answers itself, which no category may take.
const ROUTE_NAMES: [&str; 5] = ["orders", "categories", "healthz", "metrics", "echo"];

/// Whether `name` can be a category: a URL-safe word that is not one of the routes.
fn is_category_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !ROUTE_NAMES.contains(&name)
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(catalog: &Catalog, id: &str) -> u64 {
        let (cat, i) = catalog.find(id).unwrap();
        catalog.products(cat)[i].total
    }

    fn product(name: &str) -> NewProduct {
        NewProduct {
            name: name.into(),
            rrp: "1.00".into(),
            info: "i".into(),
        }
    }

    #[test]
    fn defaults_are_the_seed_fixtures() {
        let s = Catalog::with_defaults();
        let el = s.category("electronics").unwrap();
        let names: Vec<_> = s
            .products(el)
            .iter()
            .map(|p| (p.id.as_str(), p.total))
            .collect();
        assert_eq!(names, [("A1", 3), ("A2", 7)]);
        let co = s.category("confectionery").unwrap();
        assert_eq!(s.products(co)[0].name, "Chocolate Bar");
        assert_eq!(s.products(co)[0].rrp, "22.40");
        assert!(s.category("orders").is_none());
    }

    #[test]
    fn amounts_keep_the_total_within_bounds_and_refusals_change_nothing() {
        let mut s = Catalog::with_defaults();
        assert_eq!(s.add_amount("A1", 10).unwrap().1, 13);
        assert_eq!(s.add_amount("A1", -13).unwrap().1, 0);
        for bad in [-1, MAX_TOTAL as i64 + 1, i64::MAX, i64::MIN] {
            let err = s.add_amount("A1", bad).unwrap_err();
            assert!(matches!(err, Refusal::OutOfRange { .. }), "{bad}");
            assert_eq!(total(&s, "A1"), 0, "{bad} changed the total");
        }
        assert_eq!(s.add_amount("A1", MAX_TOTAL as i64).unwrap().1, MAX_TOTAL);
        let err = s.add_amount("A1", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "amount 1 would take the total of A1 ({MAX_TOTAL}) to {}, outside 0..={MAX_TOTAL}",
                MAX_TOTAL + 1
            )
        );
    }

    #[test]
    fn unknown_ids_are_refused() {
        let mut s = Catalog::with_defaults();
        for id in ["Z9", "A3", "A01", "A", "a1", "B1x", ""] {
            let err = s.add_amount(id, 1).unwrap_err();
            assert_eq!(err, Refusal::UnknownProduct(id.into()), "{id}");
        }
        assert_eq!(
            s.add_amount("Z9", 1).unwrap_err().to_string(),
            "Order Z9 not found"
        );
    }

    #[test]
    fn the_listing_follows_new_products_but_not_totals() {
        let mut s = Catalog::with_defaults();
        let co = s.category("confectionery").unwrap();
        let listing = |s: &Catalog| String::from_utf8(s.listing(co).to_vec()).unwrap();
        let before = r#"[{"id":"B1","name":"Chocolate Bar","rrp":"22.40","info":"Delicious overpriced chocolate."}]"#;
        assert_eq!(listing(&s), before);
        s.add_amount("B1", 5).unwrap();
        assert_eq!(listing(&s), before);
        let gum = NewProduct {
            name: "Gum".into(),
            rrp: "1.00".into(),
            info: "Chewy.".into(),
        };
        s.add_product(co, gum).unwrap();
        let after = before.replace(
            "]",
            r#",{"id":"B2","name":"Gum","rrp":"1.00","info":"Chewy."}]"#,
        );
        assert_eq!(listing(&s), after);
    }

    #[test]
    fn new_products_take_the_next_number_and_start_at_zero() {
        let mut s = Catalog::with_defaults();
        let el = s.category("electronics").unwrap();
        let p = s.add_product(el, product("Fan")).unwrap();
        assert_eq!((p.id.as_str(), p.total), ("A3", 0));
        assert_eq!(s.add_product(el, product("Fan")).unwrap().id, "A4");
        assert_eq!(s.add_amount("A4", 2).unwrap(), (el, 2));
    }

    #[test]
    fn a_full_category_refuses_new_products() {
        let mut s = Catalog::with_defaults();
        let co = s.category("confectionery").unwrap();
        while s.products(co).len() < MAX_PRODUCTS_PER_CATEGORY {
            s.add_product(co, product("x")).unwrap();
        }
        let err = s.add_product(co, product("one more")).unwrap_err();
        assert_eq!(err, Refusal::CategoryFull("confectionery".into()));
        assert_eq!(s.products(co).len(), MAX_PRODUCTS_PER_CATEGORY);
    }

    #[test]
    fn the_nth_product_counts_across_categories() {
        let s = Catalog::with_defaults();
        let ids: Vec<_> = (0..4)
            .map(|n| s.nth_product(n).map(|p| p.id.as_str()))
            .collect();
        assert_eq!(ids, [Some("A1"), Some("A2"), Some("B1"), None]);
    }

    #[test]
    fn data_files_are_checked() {
        let bad = [
            r#"{"categories":[{"name":"Toys","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"orders","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"categories","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"metrics","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"t","products":[]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"X1","name":"a","rrp":"1","info":"i"}]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"T1","name":"a","rrp":"1","info":"i","total":9007199254740992}]}]}"#,
            r#"{"categories":[{"name":"a","prefix":"T","products":[]},{"name":"b","prefix":"T","products":[]}]}"#,
            r#"{"categories":[]"#,
        ];
        for text in bad {
            assert!(Catalog::from_json(text).is_err(), "{text}");
        }
        let ok = r#"{"categories":[{"name":"toys","prefix":"T","products":[
            {"id":"T10","name":"b","rrp":"1","info":"i"},{"id":"T2","name":"a","rrp":"1","info":"i","total":5}]}]}"#;
        let s = Catalog::from_json(ok).unwrap();
        let ids: Vec<_> = s.products(0).iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["T2", "T10"]);
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_state() {
        let mut s = Catalog::with_defaults();
        let el = s.category("electronics").unwrap();
        s.add_amount("A2", 5).unwrap();
        s.add_product(el, product("Fan")).unwrap();
        let text = s.snapshot(42, 7);
        let (back, seq, data) =
            Catalog::from_snapshot(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!((seq, data), (42, Some(7)));
        for cat in 0..2 {
            assert_eq!(back.products(cat), s.products(cat));
            assert_eq!(back.listing(cat), s.listing(cat));
        }
        // A data file is a snapshot of nothing.
        let (_, seq, data) = Catalog::from_snapshot(DEFAULT_DATA).unwrap();
        assert_eq!((seq, data), (0, None));
    }
}
