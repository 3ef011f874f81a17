//! The messages of the real-time protocol, apart from how they travel: the total every
//! subscriber receives, the error a client is told, and the commands a client may send.

use serde_json::Value;

/// `{"id":..,"total":..}`, the one message shape subscribers receive.
pub fn total_message(id: &str, total: u64) -> String {
    // A struct rather than `json!`: no map is built for a message sent on every order.
    #[derive(serde::Serialize)]
    struct Total<'a> {
        id: &'a str,
        total: u64,
    }
    serde_json::to_string(&Total { id, total }).unwrap_or_default()
}

/// `{"error":..}`: what a client is told when its message cannot be acted on.
pub fn error_message(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// A command a client may send.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `{"cmd":"update-category","payload":{"category":"confectionery"}}`
    UpdateCategory(String),
}

/// Parses a client message. The error is what the client is told in `{"error":..}`.
pub fn parse_command(text: &str) -> Result<Command, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("message is not valid JSON: {e}"))?;
    let cmd = value.get("cmd").and_then(Value::as_str).ok_or_else(|| {
        "message must be {\"cmd\":\"update-category\",\"payload\":{\"category\":\"...\"}}"
            .to_string()
    })?;
    match cmd {
        "update-category" => value
            .pointer("/payload/category")
            .and_then(Value::as_str)
            .map(|c| Command::UpdateCategory(c.to_string()))
            .ok_or_else(|| "update-category needs payload.category (a string)".to_string()),
        other => Err(format!(
            "unknown command {other:?}; the only command is \"update-category\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_errors_are_json() {
        assert_eq!(total_message("A1", 13), r#"{"id":"A1","total":13}"#);
        assert_eq!(error_message("no \"x\""), r#"{"error":"no \"x\""}"#);
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(r#"{"cmd":"update-category","payload":{"category":"confectionery"}}"#),
            Ok(Command::UpdateCategory("confectionery".into()))
        );
        for bad in [
            "nope",
            "{}",
            r#"{"cmd":"dance"}"#,
            r#"{"cmd":"update-category"}"#,
            r#"{"cmd":"update-category","payload":{"category":5}}"#,
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }
}
