//! CSV that spreadsheets open safely: RFC 4180 quoting, CRLF line ends, and no formulas
//! from users' text (a cell starting with `=`, `+`, `-`, `@`, tab or CR is prefixed with
//! `'`, which spreadsheets show as text: OWASP's advice on CSV injection).

/// A line being built, cell by cell.
#[derive(Default)]
pub struct Line {
    out: String,
    cells: usize,
}

impl Line {
    /// Text from users or the database: neutralised and quoted as needed.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separator();
        let neutral = starts_a_formula(value);
        let quote = neutral && value.contains([',', '"', '\r', '\n'])
            || value.contains([',', '"', '\r', '\n'])
            || value.starts_with(' ')
            || value.ends_with(' ');
        if quote {
            self.out.push('"');
        }
        if neutral {
            self.out.push('\'');
        }
        for c in value.chars() {
            if c == '"' {
                self.out.push('"');
            }
            self.out.push(c);
        }
        if quote {
            self.out.push('"');
        }
        self
    }

    /// A number this server computed (never user text, so never a formula).
    pub fn number(&mut self, value: i64) -> &mut Self {
        self.separator();
        self.out.push_str(&value.to_string());
        self
    }

    /// An instant as RFC 3339 in UTC, or an empty cell.
    pub fn time(&mut self, value: Option<chrono::DateTime<chrono::Utc>>) -> &mut Self {
        self.separator();
        if let Some(t) = value {
            self.out
                .push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self
    }

    fn separator(&mut self) {
        if self.cells > 0 {
            self.out.push(',');
        }
        self.cells += 1;
    }

    /// Appends the finished line (CRLF, RFC 4180) to `buf`.
    pub fn end(self, buf: &mut String) {
        buf.push_str(&self.out);
        buf.push_str("\r\n");
    }
}

/// Whether a spreadsheet would read the cell as a formula (or a DDE call).
fn starts_a_formula(value: &str) -> bool {
    value.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A header line of plain names.
pub fn header(names: &[&str], buf: &mut String) {
    let mut line = Line::default();
    for n in names {
        line.text(n);
    }
    line.end(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(cells: &[&str]) -> String {
        let mut l = Line::default();
        for c in cells {
            l.text(c);
        }
        let mut buf = String::new();
        l.end(&mut buf);
        buf
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        assert_eq!(line(&["a", "b c"]), "a,b c\r\n");
        assert_eq!(line(&["a,b", "say \"hi\""]), "\"a,b\",\"say \"\"hi\"\"\"\r\n");
        assert_eq!(line(&["two\nlines", ""]), "\"two\nlines\",\r\n");
        assert_eq!(line(&[" padded"]), "\" padded\"\r\n");
        assert_eq!(line(&["김민지", "Ann"]), "김민지,Ann\r\n");
    }

    #[test]
    fn formulas_are_neutralised() {
        assert_eq!(line(&["=1+2"]), "'=1+2\r\n");
        assert_eq!(line(&["+31 6"]), "'+31 6\r\n");
        assert_eq!(line(&["-x"]), "'-x\r\n");
        assert_eq!(line(&["@SUM(A1)"]), "'@SUM(A1)\r\n");
        assert_eq!(line(&["\tcmd"]), "'\tcmd\r\n");
        assert_eq!(line(&["\r=x"]), "\"'\r=x\"\r\n");
        assert_eq!(
            line(&["=HYPERLINK(\"http://x\",\"y\")"]),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n"
        );
        assert_eq!(line(&["a=b"]), "a=b\r\n");
        let mut l = Line::default();
        l.number(-5).time(None);
        let mut buf = String::new();
        l.end(&mut buf);
        assert_eq!(buf, "-5,\r\n", "numbers are ours, not formulas");
    }
}
