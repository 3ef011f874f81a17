//! Server WebSocket frames built by hand, for the messages sent too often (or too late) to
//! go through tungstenite: a total framed once for thousands of subscribers, and the close
//! frame of a session tungstenite has already given up on. Pure bytes, no I/O.

/// `text` as one unmasked text frame.
pub fn text_frame(text: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(text.len() + 10);
    append_text_frame(&mut frame, text.as_bytes());
    frame
}

/// Appends `text` as one unmasked text frame (FIN set) to `out`.
pub fn append_text_frame(out: &mut Vec<u8>, text: &[u8]) {
    let len = text.len();
    out.push(0x81); // FIN, text
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(text);
}

/// An unmasked close frame with `code` and a reason cut to fit 123 bytes (on a character
/// boundary), so that the frame stays within the 125-byte control frame limit.
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut frame = vec![0x88, (2 + cut) as u8];
    frame.extend_from_slice(&code.to_be_bytes());
    frame.extend_from_slice(&reason.as_bytes()[..cut]);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_have_the_right_length_header() {
        for len in [0, 125, 126, 65535, 65536] {
            let text = "x".repeat(len);
            let frame = text_frame(&text);
            let head = match len {
                0..=125 => vec![0x81, len as u8],
                126..=65535 => [vec![0x81, 126], (len as u16).to_be_bytes().to_vec()].concat(),
                _ => [vec![0x81, 127], (len as u64).to_be_bytes().to_vec()].concat(),
            };
            assert_eq!(frame[..head.len()], head[..], "{len}");
            assert_eq!(frame.len(), head.len() + len);
            assert_eq!(&frame[head.len()..], text.as_bytes(), "{len}");
        }
    }

    #[test]
    fn close_frames_fit_the_control_frame_limit() {
        let f = close_frame(1009, &"x".repeat(500));
        assert_eq!(f.len(), 2 + 2 + 123);
        assert_eq!(&f[..4], &[0x88, 125, 0x03, 0xf1]);
        // Never cut inside a character.
        let f = close_frame(1000, &"é".repeat(100));
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }
}
