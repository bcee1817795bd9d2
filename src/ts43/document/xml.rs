//! The XML reader for the `wap-provisioningdoc` subset: a declaration, comments and a
//! doctype skipped; one root element of any name; nested `characteristic` and `parm`
//! elements read, any other element and all text ignored; attribute values unescaped with
//! a bare `&` kept as itself (AOSP's tolerance); nesting capped.

use super::{Characteristic, Document, Parm, MAX_DEPTH};

/// The XML reader for the `wap-provisioningdoc` subset.
struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

/// A start tag: name, attributes, whether it closes itself.
type Tag = (String, Vec<(String, String)>, bool);

pub(super) fn parse(text: &str) -> Result<Document, String> {
    let mut r = Reader {
        s: text.trim_start_matches('\u{feff}'),
        pos: 0,
    };
    r.skip_misc()?;
    let (_, _, closed) = r.start_tag()?;
    let roots = if closed { Vec::new() } else { r.content(0)?.0 };
    r.skip_misc()?;
    if r.pos < r.s.len() {
        return Err("content after the root element".into());
    }
    Ok(Document { roots })
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn skip_past(&mut self, end: &str) -> Result<(), String> {
        match self.rest().find(end) {
            Some(i) => {
                self.pos += i + end.len();
                Ok(())
            }
            None => Err(format!("unterminated markup (no `{end}`)")),
        }
    }

    /// Whitespace, declarations, comments, doctype.
    fn skip_misc(&mut self) -> Result<(), String> {
        loop {
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("<?") {
                self.skip_past("?>")?;
            } else if rest.starts_with("<!--") {
                self.skip_past("-->")?;
            } else if rest.starts_with("<!") {
                self.skip_past(">")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let rest = self.rest();
        let len = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '='))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err("a name is missing".into());
        }
        let name = rest[..len].to_owned();
        self.pos += len;
        Ok(name)
    }

    fn start_tag(&mut self) -> Result<Tag, String> {
        if !self.rest().starts_with('<') {
            return Err("an element was expected".into());
        }
        self.pos += 1;
        let name = self.name()?;
        let mut attrs = Vec::new();
        loop {
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("/>") {
                self.pos += 2;
                return Ok((name, attrs, true));
            }
            if rest.starts_with('>') {
                self.pos += 1;
                return Ok((name, attrs, false));
            }
            if rest.is_empty() {
                return Err(format!("unterminated <{name}>"));
            }
            let key = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(format!("attribute `{key}` has no value"));
            }
            self.pos += 1;
            self.skip_ws();
            let quote = self.rest().chars().next().ok_or("unterminated attribute")?;
            if quote != '"' && quote != '\'' {
                return Err(format!("attribute `{key}` is not quoted"));
            }
            self.pos += 1;
            let end = self
                .rest()
                .find(quote)
                .ok_or_else(|| format!("attribute `{key}` is not closed"))?;
            let raw = &self.rest()[..end];
            if raw.contains('<') {
                return Err(format!("attribute `{key}` holds `<`"));
            }
            attrs.push((key, unescape(raw)));
            self.pos += end + 1;
        }
    }

    /// Reads an element's content up to its end tag: characteristics and parms.
    fn content(&mut self, depth: usize) -> Result<(Vec<Characteristic>, Vec<Parm>), String> {
        if depth > MAX_DEPTH {
            return Err("the document nests too deep".into());
        }
        let mut kids = Vec::new();
        let mut parms = Vec::new();
        loop {
            let next = self.rest().find('<').ok_or("an element is not closed")?;
            self.pos += next;
            let rest = self.rest();
            if rest.starts_with("</") {
                self.pos += 2;
                self.name()?;
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err("a broken end tag".into());
                }
                self.pos += 1;
                return Ok((kids, parms));
            }
            if rest.starts_with("<!--") || rest.starts_with("<?") || rest.starts_with("<!") {
                self.skip_misc()?;
                continue;
            }
            let (name, attrs, closed) = self.start_tag()?;
            let attr = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let (inner_kids, inner_parms) = if closed {
                (Vec::new(), Vec::new())
            } else {
                self.content(depth + 1)?
            };
            match name.as_str() {
                "characteristic" => kids.push(Characteristic {
                    kind: attr("type").ok_or("a characteristic without type")?,
                    parms: inner_parms,
                    children: inner_kids,
                }),
                "parm" => parms.push(Parm {
                    name: attr("name").ok_or("a parm without name")?,
                    value: attr("value").unwrap_or_default(),
                }),
                _ => {}
            }
        }
    }
}

/// Decodes the five entities and numeric references; a bare `&` stays itself.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            ch.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
