//! Plain-text tables: left-aligned columns two spaces apart, `-` for nothing. No colour, no
//! borders: the output is read by people and by `grep`/`awk` alike.

#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

/// A missing value in a cell.
pub const NOTHING: &str = "-";

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// One row; an empty cell shows as `-`.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let row = cells
            .into_iter()
            .map(Into::into)
            .map(|cell: String| if cell.is_empty() { NOTHING.to_owned() } else { cell })
            .collect();
        self.rows.push(row);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers = self.headers.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (index, cell) in row.iter().enumerate().take(columns) {
                if index > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = widths[index] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Text for an optional value.
pub fn or_nothing<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| NOTHING.to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_lines_have_no_trailing_space() {
        let mut table = Table::new(&["A", "LONGER"]);
        table.row(["wide cell", ""]);
        table.row(["x", "é"]);
        assert_eq!(table.render(), "A          LONGER\nwide cell  -\nx          é\n");
    }
}
