//! Maps JSON paths such as `environments.prod.windows[0]` to the line and
//! column where their value starts, so that problems found after parsing
//! (cross-references, invalid values) point into the file like parse errors do.
//! The scan also finds duplicate object keys, which serde_json accepts silently
//! for maps (the last value would win).

use std::collections::HashMap;

/// Positions of every value of a JSON document, keyed by JSON path.
#[derive(Debug, Default)]
pub struct SourceIndex {
    positions: HashMap<String, (usize, usize)>,
    /// Duplicate keys: path of the repeated member, line, column.
    pub duplicates: Vec<(String, usize, usize)>,
}

impl SourceIndex {
    /// Scans a document that serde_json already accepted. A malformed document
    /// yields a partial index, never a panic.
    pub fn build(source: &str) -> SourceIndex {
        let mut scanner = Scanner { bytes: source.as_bytes(), pos: 0, line: 1, line_start: 0 };
        let mut index = SourceIndex::default();
        let mut path = String::new();
        scanner.skip_ws();
        scanner.value(&mut path, &mut index, 0);
        index
    }

    /// Returns line and column (1-based) of the value at `path`, or of its
    /// closest ancestor that exists in the document, or (0, 0).
    pub fn locate(&self, path: &str) -> (usize, usize) {
        let mut current = path;
        loop {
            if let Some(&position) = self.positions.get(current) {
                return position;
            }
            match current.rfind(['.', '[']) {
                Some(cut) => current = current.get(..cut).unwrap_or(""),
                None => return self.positions.get("").copied().unwrap_or((0, 0)),
            }
        }
    }
}

/// Nesting deeper than this is not indexed (serde_json stops at 128 anyway).
const MAX_DEPTH: usize = 128;

struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some(b'\n') {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    fn column(&self) -> usize {
        self.pos - self.line_start + 1
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    /// Scans one value starting at the current byte and records it under `path`.
    fn value(&mut self, path: &mut String, index: &mut SourceIndex, depth: usize) -> Option<()> {
        index.positions.insert(path.clone(), (self.line, self.column()));
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.object(path, index, depth),
            b'[' => self.array(path, index, depth),
            b'"' => self.string().map(|_| ()),
            _ => {
                while matches!(self.peek(), Some(byte) if !matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.bump();
                }
                Some(())
            }
        }
    }

    fn object(&mut self, path: &mut String, index: &mut SourceIndex, depth: usize) -> Option<()> {
        self.bump();
        let base_len = path.len();
        let mut seen: Vec<String> = Vec::new();
        loop {
            self.skip_ws();
            match self.peek()? {
                b'}' => {
                    self.bump();
                    return Some(());
                }
                b',' => {
                    self.bump();
                    continue;
                }
                _ => {}
            }
            let (key_line, key_column) = (self.line, self.column());
            let key = self.string()?;
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&key);
            if seen.contains(&key) {
                index.duplicates.push((path.clone(), key_line, key_column));
            } else {
                seen.push(key);
            }
            self.skip_ws();
            if self.peek()? != b':' {
                return None;
            }
            self.bump();
            self.skip_ws();
            let result = self.value(path, index, depth + 1);
            path.truncate(base_len);
            result?;
        }
    }

    fn array(&mut self, path: &mut String, index: &mut SourceIndex, depth: usize) -> Option<()> {
        self.bump();
        let base_len = path.len();
        let mut item = 0usize;
        loop {
            self.skip_ws();
            match self.peek()? {
                b']' => {
                    self.bump();
                    return Some(());
                }
                b',' => {
                    self.bump();
                    continue;
                }
                _ => {}
            }
            path.push('[');
            path.push_str(&item.to_string());
            path.push(']');
            let result = self.value(path, index, depth + 1);
            path.truncate(base_len);
            result?;
            item += 1;
        }
    }

    /// Scans a string literal and returns its decoded value.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        if self.peek()? != b'"' {
            return None;
        }
        self.bump();
        loop {
            match self.peek()? {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => {
                    self.bump();
                    break;
                }
                _ => self.bump(),
            }
        }
        let literal = self.bytes.get(start..self.pos)?;
        serde_json::from_slice(literal).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_nested_values() {
        let source = "{\n  \"a\": {\"b\": [1,\n    {\"c\": true}]}\n}";
        let index = SourceIndex::build(source);
        assert_eq!(index.locate(""), (1, 1));
        assert_eq!(index.locate("a"), (2, 8));
        assert_eq!(index.locate("a.b[0]"), (2, 15));
        assert_eq!(index.locate("a.b[1].c"), (3, 11));
    }

    #[test]
    fn locate_falls_back_to_ancestor() {
        let index = SourceIndex::build("{\"a\": {\"b\": 1}}");
        assert_eq!(index.locate("a.missing[3]"), (1, 7));
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let index = SourceIndex::build("{\"a\": 1,\n \"a\": 2}");
        assert_eq!(index.duplicates, vec![("a".to_owned(), 2, 2)]);
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let index = SourceIndex::build(r#"{"a\"b": {"c": 1}}"#);
        assert_eq!(index.locate("a\"b.c"), (1, 16));
    }

    #[test]
    fn truncated_input_does_not_panic() {
        for source in ["{", "{\"a\"", "[1,", "\"abc", "{\"a\": [", "\\"] {
            let _ = SourceIndex::build(source);
        }
    }
}
