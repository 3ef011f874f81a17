//! The catalog and the order totals: categories, their products, and the rules for adding
//! products and orders. Pure data, no I/O; the server decides what to do with the results.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tungstenite::Bytes;

use crate::error::HttpError;

/// The largest total: JSON numbers are read as doubles by browsers, which hold every integer
/// up to 2^53 - 1 exactly.
pub const MAX_TOTAL: u64 = (1 << 53) - 1;

/// Most products one category may hold, so that repeated POSTs cannot grow memory forever.
pub const MAX_PRODUCTS_PER_CATEGORY: usize = 1_000;

/// Longest `name`, `rrp` and `info` of a new product, in characters.
const MAX_NAME_CHARS: usize = 200;
const MAX_RRP_CHARS: usize = 20;
const MAX_INFO_CHARS: usize = 2000;

/// Index of a category in the store; stable for the life of the process.
pub type CategoryId = usize;

/// One product and its running order total.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub rrp: String,
    pub info: String,
    #[serde(default)]
    pub total: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryFile {
    name: String,
    prefix: String,
    products: Vec<Product>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
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

/// All categories and products. Totals only change through [`Store::add_order`] and
/// [`Store::add_amount`] (and the simulator).
#[derive(Debug)]
pub struct Store {
    categories: Vec<Category>,
}

/// The default catalog: the seed's fixtures.
pub const DEFAULT_DATA: &str = include_str!("../data/products.json");

impl Store {
    /// Builds the store from JSON in the shape of `data/products.json`, checking every rule
    /// the server relies on (names, prefixes, ids, totals). The error says what is wrong.
    pub fn from_json(text: &str) -> Result<Store, String> {
        let file: CatalogFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut categories: Vec<Category> = Vec::new();
        for c in file.categories {
            if !is_category_name(&c.name) {
                return Err(format!(
                    "category name {:?} must be lowercase letters, digits, '-' or '_' (and not \"orders\")",
                    c.name
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
        Ok(Store { categories })
    }

    /// The seed's fixtures: electronics (A1, A2) and confectionery (B1).
    pub fn with_defaults() -> Store {
        Store::from_json(DEFAULT_DATA).expect("data/products.json is valid")
    }

    /// Looks a category up by its URL name.
    pub fn category(&self, name: &str) -> Option<CategoryId> {
        self.categories.iter().position(|c| c.name == name)
    }

    /// The category's name.
    pub fn category_name(&self, cat: CategoryId) -> &str {
        &self.categories[cat].name
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
    /// `GET /<category>` answers with. Kept up to date by [`Store::add_product`].
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

    /// Adds a product built from a POST body `{name, rrp, info}` to the category. Its id is
    /// the prefix plus one more than the highest number in use; its total starts at 0.
    /// Returns 400 naming the field when the body is wrong, 409 when the category is full.
    pub fn add_product(&mut self, cat: CategoryId, body: &Value) -> Result<&Product, HttpError> {
        let Some(obj) = body.as_object() else {
            return Err(HttpError::new(
                400,
                "body must be a JSON object {name, rrp, info}",
            ));
        };
        let name = text_field(obj, "name", MAX_NAME_CHARS)?;
        let rrp = rrp_field(obj)?;
        let info = text_field(obj, "info", MAX_INFO_CHARS)?;
        let c = &mut self.categories[cat];
        if c.products.len() >= MAX_PRODUCTS_PER_CATEGORY {
            return Err(HttpError::new(
                409,
                format!(
                    "category {} is full ({MAX_PRODUCTS_PER_CATEGORY} products)",
                    c.name
                ),
            ));
        }
        let next = c
            .products
            .last()
            .and_then(|p| id_number(&c.prefix, &p.id))
            .map_or(1, |n| n + 1);
        let id = format!("{}{next}", c.prefix);
        c.products.push(Product {
            id,
            name,
            rrp,
            info,
            total: 0,
        });
        c.refresh_listing();
        Ok(c.products.last().expect("just pushed"))
    }

    /// Applies `{"amount": <integer>}` to product `id`. Returns the product's category, id
    /// and new total. 404 for an unknown id; 400 when the amount is missing, not an integer
    /// or would take the total outside `0..=MAX_TOTAL`. The total is unchanged on any error.
    pub fn add_order(&mut self, id: &str, body: &Value) -> Result<(CategoryId, u64), HttpError> {
        if !self.contains(id) {
            return Err(HttpError::new(404, format!("Order {id} not found")));
        }
        self.add_amount(id, parse_amount(body)?)
    }

    /// Adds an amount already read from an order body to product `id`, with the rules of
    /// [`Store::add_order`]: 404 for an unknown id, 400 when the total would leave
    /// `0..=MAX_TOTAL` (and then it is unchanged).
    pub fn add_amount(&mut self, id: &str, amount: i128) -> Result<(CategoryId, u64), HttpError> {
        let Some((cat, i)) = self.find(id) else {
            return Err(HttpError::new(404, format!("Order {id} not found")));
        };
        let product = &mut self.categories[cat].products[i];
        let total = i128::from(product.total) + amount;
        if !(0..=i128::from(MAX_TOTAL)).contains(&total) {
            return Err(HttpError::new(
                400,
                format!(
                    "amount {amount} would take the total of {id} ({}) to {total}, outside 0..={MAX_TOTAL}",
                    product.total
                ),
            ));
        }
        product.total = total as u64;
        Ok((cat, product.total))
    }

    /// Adds `amount` orders to the `n`th product across all categories (category order,
    /// then id order), for the simulator. Returns the product's category and the product;
    /// `None` when there is no such product or the total would pass [`MAX_TOTAL`].
    pub fn simulate_order(&mut self, mut n: usize, amount: u64) -> Option<(CategoryId, &Product)> {
        for (cat, c) in self.categories.iter_mut().enumerate() {
            if n < c.products.len() {
                let product = &mut c.products[n];
                product.total = product
                    .total
                    .checked_add(amount)
                    .filter(|t| *t <= MAX_TOTAL)?;
                return Some((cat, product));
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

/// Whether `name` can be a category: a URL-safe word that is not the `orders` route.
fn is_category_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "orders"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The amount of an order body: a JSON integer. Fractions, exponents, strings and null are
/// refused even when JavaScript would call them whole (`1.0`, `1e3`).
pub fn parse_amount(body: &Value) -> Result<i128, HttpError> {
    let Some(obj) = body.as_object() else {
        return Err(HttpError::new(
            400,
            "body must be a JSON object like {\"amount\": 10}",
        ));
    };
    let Some(amount) = obj.get("amount") else {
        return Err(HttpError::new(
            400,
            "body must have required property 'amount'",
        ));
    };
    let integer = match amount {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        _ => None,
    };
    integer.ok_or_else(|| {
        HttpError::new(
            400,
            format!("Supplied amount must be an integer, got {amount}"),
        )
    })
}

/// A required string field of a new product, trimmed, non-empty and at most `max` chars.
fn text_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, HttpError> {
    let value = match obj.get(field) {
        None => {
            return Err(HttpError::new(
                400,
                format!("body must have required property '{field}'"),
            ));
        }
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(HttpError::new(400, format!("body/{field} must be string"))),
    };
    if value.is_empty() {
        return Err(HttpError::new(
            400,
            format!("body/{field} must not be empty"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(HttpError::new(
            400,
            format!("body/{field} must not contain control characters"),
        ));
    }
    if value.chars().count() > max {
        return Err(HttpError::new(
            400,
            format!("body/{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// The `rrp` of a new product: a price such as "9.99" (a JSON number is taken as written).
fn rrp_field(obj: &serde_json::Map<String, Value>) -> Result<String, HttpError> {
    let text = match obj.get("rrp") {
        Some(Value::Number(n)) => n.to_string(),
        _ => text_field(obj, "rrp", MAX_RRP_CHARS)?,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.len() > MAX_RRP_CHARS || !digits(whole) || !digits(frac) {
        return Err(HttpError::new(
            400,
            format!("body/rrp must be a price like \"9.99\", got {text:?}"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn total(store: &Store, id: &str) -> u64 {
        let (cat, i) = store.find(id).unwrap();
        store.products(cat)[i].total
    }

    #[test]
    fn defaults_are_the_seed_fixtures() {
        let s = Store::with_defaults();
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
    fn orders_add_integers_and_refuse_everything_else_without_change() {
        let mut s = Store::with_defaults();
        assert_eq!(s.add_order("A1", &json!({"amount": 10})).unwrap().1, 13);
        assert_eq!(s.add_order("A1", &json!({"amount": -13})).unwrap().1, 0);
        for bad in [
            json!({"amount": 1.5}),
            json!({"amount": "10"}),
            json!({"amount": null}),
            json!({"amount": 1.0}),
            json!({}),
            json!([1]),
            json!({"amount": -1}),
            json!({"amount": 9223372036854775808u64}),
            json!({"amount": MAX_TOTAL + 1}),
        ] {
            let err = s.add_order("A1", &bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
            assert_eq!(total(&s, "A1"), 0, "{bad} changed the total");
        }
        assert_eq!(
            s.add_order("A1", &json!({"amount": MAX_TOTAL})).unwrap().1,
            MAX_TOTAL
        );
        assert_eq!(
            s.add_order("A1", &json!({"amount": 1}))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn unknown_ids_are_404() {
        let mut s = Store::with_defaults();
        for id in ["Z9", "A3", "A01", "A", "a1", "B1x", ""] {
            let err = s.add_order(id, &json!({"amount": 1})).unwrap_err();
            assert_eq!(err.status(), 404, "{id}");
        }
        assert_eq!(
            s.add_order("Z9", &json!({})).unwrap_err().message(),
            "Order Z9 not found"
        );
    }

    #[test]
    fn the_listing_follows_new_products_but_not_totals() {
        let mut s = Store::with_defaults();
        let co = s.category("confectionery").unwrap();
        let listing = |s: &Store| String::from_utf8(s.listing(co).to_vec()).unwrap();
        let before = r#"[{"id":"B1","name":"Chocolate Bar","rrp":"22.40","info":"Delicious overpriced chocolate."}]"#;
        assert_eq!(listing(&s), before);
        s.add_order("B1", &json!({"amount": 5})).unwrap();
        assert_eq!(listing(&s), before);
        let body = json!({"name": "Gum", "rrp": "1.00", "info": "Chewy."});
        s.add_product(co, &body).unwrap();
        let after = before.replace(
            "]",
            r#",{"id":"B2","name":"Gum","rrp":"1.00","info":"Chewy."}]"#,
        );
        assert_eq!(listing(&s), after);
    }

    #[test]
    fn new_products_take_the_next_number_and_start_at_zero() {
        let mut s = Store::with_defaults();
        let el = s.category("electronics").unwrap();
        let body = json!({"name": "Fan", "rrp": "12.50", "info": "Cool."});
        let p = s.add_product(el, &body).unwrap();
        assert_eq!((p.id.as_str(), p.total), ("A3", 0));
        assert_eq!(s.add_product(el, &body).unwrap().id, "A4");
        assert_eq!(s.add_order("A4", &json!({"amount": 2})).unwrap(), (el, 2));
    }

    #[test]
    fn new_product_errors_name_the_field() {
        let mut s = Store::with_defaults();
        let el = s.category("electronics").unwrap();
        let cases = [
            (json!({"rrp": "1", "info": "i"}), "'name'"),
            (json!({"name": 5, "rrp": "1", "info": "i"}), "body/name"),
            (json!({"name": "n", "rrp": "abc", "info": "i"}), "body/rrp"),
            (json!({"name": "n", "rrp": "1"}), "'info'"),
            (json!({"name": " ", "rrp": "1", "info": "i"}), "body/name"),
            (
                json!({"name": "a\u{0}b", "rrp": "1", "info": "i"}),
                "body/name",
            ),
        ];
        for (body, field) in cases {
            let err = s.add_product(el, &body).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.message().contains(field), "{body}: {}", err.message());
        }
        assert_eq!(s.products(el).len(), 2);
    }

    #[test]
    fn data_files_are_checked() {
        let bad = [
            r#"{"categories":[{"name":"Toys","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"orders","prefix":"T","products":[]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"t","products":[]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"X1","name":"a","rrp":"1","info":"i"}]}]}"#,
            r#"{"categories":[{"name":"toys","prefix":"T","products":[{"id":"T1","name":"a","rrp":"1","info":"i","total":9007199254740992}]}]}"#,
            r#"{"categories":[{"name":"a","prefix":"T","products":[]},{"name":"b","prefix":"T","products":[]}]}"#,
            r#"{"categories":[]"#,
        ];
        for text in bad {
            assert!(Store::from_json(text).is_err(), "{text}");
        }
        let ok = r#"{"categories":[{"name":"toys","prefix":"T","products":[
            {"id":"T10","name":"b","rrp":"1","info":"i"},{"id":"T2","name":"a","rrp":"1","info":"i","total":5}]}]}"#;
        let s = Store::from_json(ok).unwrap();
        let ids: Vec<_> = s.products(0).iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["T2", "T10"]);
    }
}
