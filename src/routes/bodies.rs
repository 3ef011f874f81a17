//! Request bodies: an order's amount and a new product's fields, read and checked, each
//! refusal naming what was wrong.

use serde_json::Value;

use crate::error::HttpError;
use crate::http::Request;
use crate::state::{MAX_TOTAL, NewProduct};

/// Longest `name`, `rrp` and `info` of a new product, in characters.
const MAX_NAME_CHARS: usize = 200;
const MAX_RRP_CHARS: usize = 20;
const MAX_INFO_CHARS: usize = 2000;

/// The amount of an order body, with the refusals of [`parse_amount`]. The body
/// every client sends, `{"amount": <integer>}` and nothing else, is read straight into an
/// integer; any other body goes through a `Value`, so each refusal keeps its message.
pub(super) fn order_amount(req: &Request) -> Result<i128, HttpError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        amount: i64,
    }
    check_json_content_type(req)?;
    // Only an object: serde would also read a struct from an array (`[1]`).
    let object = req.body.trim_ascii_start().starts_with(b"{");
    if object && let Ok(order) = serde_json::from_slice::<Order>(&req.body) {
        return Ok(order.amount.into());
    }
    parse_amount(&json_body(req)?)
}

/// An amount that can be applied to some total: one outside `-MAX_TOTAL..=MAX_TOTAL` would
/// take any total out of `0..=MAX_TOTAL`.
pub(super) fn bounded_amount(amount: i128) -> Result<i64, HttpError> {
    if amount.unsigned_abs() > u128::from(MAX_TOTAL) {
        return Err(HttpError::new(
            400,
            format!("amount {amount} would take any total outside 0..={MAX_TOTAL}"),
        ));
    }
    Ok(amount as i64)
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

/// A new product from a POST body `{name, rrp, info}`; 400 naming the field when wrong.
pub(super) fn new_product(body: &Value) -> Result<NewProduct, HttpError> {
    let Some(obj) = body.as_object() else {
        return Err(HttpError::new(
            400,
            "body must be a JSON object {name, rrp, info}",
        ));
    };
    Ok(NewProduct {
        name: text_field(obj, "name", MAX_NAME_CHARS)?,
        rrp: rrp_field(obj)?,
        info: text_field(obj, "info", MAX_INFO_CHARS)?,
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

/// Parses a JSON request body; 415 for a Content-Type that is not JSON, 400 for bad JSON.
pub(super) fn json_body(req: &Request) -> Result<Value, HttpError> {
    check_json_content_type(req)?;
    if req.body.is_empty() {
        return Err(HttpError::new(400, "body must be JSON, and it is empty"));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| HttpError::new(400, format!("body is not valid JSON: {e}")))
}

/// 415 for a Content-Type that is not JSON (none at all is accepted).
fn check_json_content_type(req: &Request) -> Result<(), HttpError> {
    if let Some(ct) = req.content_type.as_deref() {
        let media = ct.split(';').next().unwrap_or("").trim().as_bytes();
        let suffix = b"+json";
        let json = media.eq_ignore_ascii_case(b"application/json")
            || media.len() >= suffix.len()
                && media[media.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
        if !json {
            return Err(HttpError::new(
                415,
                format!("Unsupported Media Type: {ct}; send Content-Type: application/json"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct read of `{"amount": n}` must agree with the `Value` path on every body.
    #[test]
    fn order_amounts_read_directly_match_the_value_path() {
        let bodies = [
            r#"{"amount":1}"#,
            r#" { "amount" : -42 } "#,
            r#"{"amount":9223372036854775807}"#,
            r#"{"amount":9223372036854775808}"#,
            r#"{"amount":-9223372036854775808}"#,
            r#"{"amount":-0}"#,
            r#"{"amount":1.0}"#,
            r#"{"amount":1e3}"#,
            r#"{"amount":"10"}"#,
            r#"{"amount":null}"#,
            r#"{"amount":1,"amount":2}"#,
            r#"{"amount":1,"note":"x"}"#,
            r#"{"\u0061mount":7}"#,
            r#"{}"#,
            r#"[1]"#,
            r#"5"#,
            r#"{"amount":1} x"#,
            r#"{"amount":01}"#,
            r#"{"amount":1,}"#,
            r#"{"amount":[1]}"#,
            r#"{"amount":{"a":1}}"#,
            "{\"amount\":3}\n",
            "\u{c}{\"amount\":3}",
            "",
        ];
        for body in bodies {
            let req = Request {
                body: body.as_bytes().to_vec(),
                content_type: Some("Application/JSON; charset=utf-8".into()),
                ..Request::default()
            };
            let reference = json_body(&req).and_then(|v| parse_amount(&v));
            assert_eq!(order_amount(&req), reference, "{body}");
        }
        let xml = Request {
            body: br#"{"amount":1}"#.to_vec(),
            content_type: Some("text/xml".into()),
            ..Request::default()
        };
        assert_eq!(order_amount(&xml).unwrap_err().status(), 415);
    }

    /// Moved from the catalog's tests: the body half of the amount rules.
    #[test]
    fn order_bodies_must_hold_an_integer_amount_within_reach_of_a_total() {
        use serde_json::json;
        let amount = |v: Value| parse_amount(&v).and_then(bounded_amount);
        assert_eq!(amount(json!({"amount": 10})), Ok(10));
        assert_eq!(amount(json!({"amount": -13})), Ok(-13));
        assert_eq!(amount(json!({"amount": MAX_TOTAL})), Ok(MAX_TOTAL as i64));
        for bad in [
            json!({"amount": 1.5}),
            json!({"amount": "10"}),
            json!({"amount": null}),
            json!({"amount": 1.0}),
            json!({}),
            json!([1]),
            json!({"amount": 9223372036854775808u64}),
            json!({"amount": MAX_TOTAL + 1}),
        ] {
            assert_eq!(amount(bad.clone()).unwrap_err().status(), 400, "{bad}");
        }
    }

    #[test]
    fn new_product_errors_name_the_field() {
        use serde_json::json;
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
            let err = new_product(&body).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(err.message().contains(field), "{body}: {}", err.message());
        }
    }
}
