//! The two ways values reach ClickHouse: rows in RowBinary (no text at
//! all, so nothing to escape and floats arrive bit for bit) and, in the few
//! WHERE clauses that compare strings, a quoted literal built here.

/// A ClickHouse string literal: `'...'` with backslash escapes, so any
/// text (quotes, backslashes, SQL words, newlines) stays one value.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A comma-separated list of quoted literals, for `IN (...)`.
pub fn quote_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(quote).collect::<Vec<_>>().join(",")
}

/// Rows in ClickHouse's RowBinary format: little-endian numbers, strings
/// and arrays prefixed by a LEB128 length, columns in table order.
#[derive(Default)]
pub struct RowBinary {
    pub buf: Vec<u8>,
}

impl RowBinary {
    fn varint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.varint(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    pub fn strs(&mut self, items: &[&str]) -> &mut Self {
        self.varint(items.len() as u64);
        for s in items {
            self.str(s);
        }
        self
    }

    pub fn i32s(&mut self, items: impl ExactSizeIterator<Item = i32>) -> &mut Self {
        self.varint(items.len() as u64);
        for v in items {
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self
    }

    pub fn f64s(&mut self, items: impl ExactSizeIterator<Item = f64>) -> &mut Self {
        self.varint(items.len() as u64);
        for v in items {
            self.f64(v);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_every_special_character() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(quote("x'); DROP TABLE t; --"), r"'x\'); DROP TABLE t; --'");
        assert_eq!(quote("\\'"), r"'\\\''");
        assert_eq!(quote("l1\nl2"), r"'l1\nl2'");
    }

    #[test]
    fn row_binary_lengths_are_leb128() {
        let mut rb = RowBinary::default();
        rb.str(&"x".repeat(300));
        assert_eq!(&rb.buf[..2], &[0xac, 0x02]);
        assert_eq!(rb.buf.len(), 302);
    }
}
