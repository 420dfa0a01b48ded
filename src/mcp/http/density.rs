//! A bound on how many JSON values one message may hold for its size. Parsed, a value costs far
//! more than its text: rmcp turns a 4 MiB array of `1,` into about 370 MB. The values are
//! counted in one pass over the bytes, without parsing, before anything parses them, so a
//! message is parsed only when its parsed form stays within about twice its size (plus a
//! fixed allowance for the small messages every client sends).

use hyper::StatusCode;

use super::reply::{Refusal, plain};

/// Values any message may hold whatever its size: a few MiB parsed.
const FIXED_ALLOWANCE: usize = 16 * 1024;
/// Bytes of text that buy one more value: a parsed value costs ~200 bytes (measured with an
/// array of small numbers), so 256 bytes of text per value keeps the parse under 2x the text.
const BYTES_PER_VALUE: usize = 256;

pub fn refuse_dense_json(bytes: &[u8]) -> Result<(), Refusal> {
    let allowed = FIXED_ALLOWANCE + bytes.len() / BYTES_PER_VALUE;
    if values_over(bytes, allowed) {
        return Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request holds too many JSON values for its size; send fewer\n",
        )
        .into());
    }
    Ok(())
}

/// Whether `text` holds more than `limit` values, counting each value and each key (what a
/// parser allocates for) by the punctuation that introduces it, outside strings.
fn values_over(text: &[u8], limit: usize) -> bool {
    let (mut count, mut in_string, mut escaped) = (1usize, false, false);
    for &byte in text {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' | b',' | b':' => {
                count += 1;
                if count > limit {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_values_and_keys_outside_strings() {
        assert!(!values_over(br#"{"a": [1, 2, 3]}"#, 6));
        assert!(values_over(br#"{"a": [1, 2, 3]}"#, 5));
        // Punctuation inside strings, escaped quotes included, is text.
        assert!(!values_over(br#"["[,:{\",", 1]"#, 3));
        let dense = format!("[{}1]", "1,".repeat(100_000));
        assert!(refuse_dense_json(dense.as_bytes()).is_err());
        let sparse = format!(r#"{{"pad": "{}"}}"#, "x".repeat(4_000_000));
        assert!(refuse_dense_json(sparse.as_bytes()).is_ok());
    }
}
