//! Client WebSocket commands: parsing never panics, and an accepted `update-category`
//! carries exactly the category the JSON says.
//!
//! Input: the text of a client message as UTF-8 (other inputs are skipped; tungstenite
//! refuses non-UTF-8 text frames before they reach the parser).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mock_srv::message::{Command, parse_command};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_command(text) {
        Ok(Command::UpdateCategory(category)) => {
            let value: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("accepted {text:?}, which is not JSON: {e}"));
            assert_eq!(
                value.get("cmd").and_then(Value::as_str),
                Some("update-category"),
                "accepted {text:?} as update-category"
            );
            assert_eq!(
                value.pointer("/payload/category").and_then(Value::as_str),
                Some(category.as_str()),
                "category of {text:?}"
            );
        }
        Err(message) => assert!(!message.is_empty(), "empty error for {text:?}"),
    }
});
