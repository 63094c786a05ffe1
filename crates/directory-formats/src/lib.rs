//! Directory files: the people of a tenant as a table (CSV or XLSX), read for an import and
//! written for an export or as the blank template. Only the table lives here — columns,
//! limits, decoding — so the parsers can be fuzzed without a server; what a row means for
//! the directory (add, update, refuse) is decided in the server (`conclave-server`: `api::directory_io`).

pub mod csv;
pub mod scim_filter;
pub mod xlsx;

/// The largest file accepted (bytes).
pub const MAX_UPLOAD: usize = 8 * 1024 * 1024;
/// The most data rows (not counting the header) in one file.
pub const MAX_ROWS: usize = 10_000;
/// The longest cell (characters).
pub const MAX_CELL: usize = 1_000;
/// The most columns a header may have.
pub const MAX_COLUMNS: usize = 32;

/// The columns of a directory file, in the template's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    Kind,
    Name,
    LoginName,
    Department,
    Title,
    Extension,
    Mobile,
    Landline,
    Email,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::Kind,
        Column::Name,
        Column::LoginName,
        Column::Department,
        Column::Title,
        Column::Extension,
        Column::Mobile,
        Column::Landline,
        Column::Email,
    ];

    /// The header in English (what exports and the English template write).
    pub fn key(self) -> &'static str {
        match self {
            Column::Kind => "kind",
            Column::Name => "name",
            Column::LoginName => "login_name",
            Column::Department => "department",
            Column::Title => "title",
            Column::Extension => "extension",
            Column::Mobile => "mobile",
            Column::Landline => "landline",
            Column::Email => "email",
        }
    }

    /// The header of the Chinese template (read back as well).
    pub fn chinese(self) -> &'static str {
        match self {
            Column::Kind => "类型",
            Column::Name => "姓名",
            Column::LoginName => "登录名",
            Column::Department => "部门",
            Column::Title => "职务",
            Column::Extension => "分机",
            Column::Mobile => "手机",
            Column::Landline => "座机",
            Column::Email => "邮箱",
        }
    }

    /// The column a header cell names (English or Chinese, any case, spaces around ignored).
    pub fn from_header(cell: &str) -> Option<Column> {
        let cell = cell.trim().trim_start_matches('\u{feff}').to_lowercase();
        let cell = cell.replace([' ', '-'], "_");
        Column::ALL
            .into_iter()
            .find(|c| c.key() == cell || c.chinese() == cell)
    }
}

/// A file refused as a whole (before any row is looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("the file is larger than {} MiB", MAX_UPLOAD / 1024 / 1024)]
    TooLarge,
    #[error("the file has more than {MAX_ROWS} rows")]
    TooManyRows,
    #[error("the file is empty: expected a header row (kind, name, …)")]
    Empty,
    #[error("{0}")]
    Malformed(String),
    #[error("unknown column {0:?}; the columns are {1}")]
    UnknownColumn(String, String),
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("the required column {0:?} is missing")]
    MissingColumn(&'static str),
    #[error("the header has more than {MAX_COLUMNS} columns")]
    TooManyColumns,
}

impl FileError {
    /// Which part of the request it concerns, for a 422 naming the field.
    pub fn field(&self) -> &'static str {
        match self {
            FileError::UnknownColumn(..)
            | FileError::DuplicateColumn(_)
            | FileError::MissingColumn(_)
            | FileError::TooManyColumns => "header",
            _ => "file",
        }
    }
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
    /// What the bytes are: an XLSX is a ZIP archive (`PK\x03\x04`), anything else is read as
    /// CSV.
    pub fn sniff(bytes: &[u8]) -> Format {
        if bytes.starts_with(b"PK\x03\x04") {
            Format::Xlsx
        } else {
            Format::Csv
        }
    }
}

/// One data row: its line (1-based, the header is line 1) and a cell per known column
/// (`None` when the file has no such column: the field is left as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub cells: Vec<(Column, String)>,
}

impl Row {
    pub fn get(&self, column: Column) -> Option<&str> {
        self.cells
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v.as_str())
    }
}

/// A read file: the columns it has, and its rows (blank rows skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
}

/// Reads a file of either format (sniffed from its first bytes).
pub fn read(bytes: &[u8]) -> Result<Table, FileError> {
    if bytes.len() > MAX_UPLOAD {
        return Err(FileError::TooLarge);
    }
    match Format::sniff(bytes) {
        Format::Csv => csv::read(bytes),
        Format::Xlsx => xlsx::read(bytes),
    }
}

/// Builds the table from raw records (the header first), whatever the format: maps the
/// header to columns, trims cells, skips blank rows, undoes the export's guard against
/// formula injection (a leading `'` before `=`, `+`, `-` or `@`), bounds rows and cells.
pub(crate) fn table<I>(mut records: I) -> Result<Table, FileError>
where
    I: Iterator<Item = Result<Vec<String>, FileError>>,
{
    let header = loop {
        match records.next() {
            None => return Err(FileError::Empty),
            Some(record) => {
                let record = record?;
                if record.iter().any(|c| !c.trim().is_empty()) {
                    break record;
                }
            }
        }
    };
    if header.len() > MAX_COLUMNS {
        return Err(FileError::TooManyColumns);
    }
    let mut columns: Vec<Option<Column>> = Vec::with_capacity(header.len());
    for cell in &header {
        if cell.trim().is_empty() {
            columns.push(None);
            continue;
        }
        let column = Column::from_header(cell).ok_or_else(|| {
            let names: Vec<&str> = Column::ALL.iter().map(|c| c.key()).collect();
            FileError::UnknownColumn(cell.chars().take(50).collect(), names.join(", "))
        })?;
        if columns.contains(&Some(column)) {
            return Err(FileError::DuplicateColumn(column.key().to_owned()));
        }
        columns.push(Some(column));
    }
    for required in [Column::Kind, Column::Name] {
        if !columns.contains(&Some(required)) {
            return Err(FileError::MissingColumn(required.key()));
        }
    }
    let mut table = Table {
        columns: columns.iter().flatten().copied().collect(),
        rows: Vec::new(),
    };
    for (i, record) in records.enumerate() {
        let record = record?;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if table.rows.len() == MAX_ROWS {
            return Err(FileError::TooManyRows);
        }
        let line = i + 2;
        if record.len() > columns.len()
            && record[columns.len()..].iter().any(|c| !c.trim().is_empty())
        {
            return Err(FileError::Malformed(format!(
                "line {line} has more cells ({}) than the header has columns ({})",
                record.len(),
                columns.len()
            )));
        }
        let mut cells = Vec::with_capacity(table.columns.len());
        for (j, column) in columns.iter().enumerate() {
            let Some(column) = column else { continue };
            let raw = record.get(j).map(String::as_str).unwrap_or("");
            if raw.chars().count() > MAX_CELL {
                return Err(FileError::Malformed(format!(
                    "line {line}, column {}: a cell longer than {MAX_CELL} characters",
                    column.key()
                )));
            }
            cells.push((*column, unguard(raw.trim()).to_owned()));
        }
        table.rows.push(Row { line, cells });
    }
    Ok(table)
}

/// A cell an export wrote as `'=…` (so a spreadsheet does not run it as a formula) reads back
/// as `=…`.
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

/// The export's guard: a text cell that a spreadsheet would take for a formula gets a
/// leading `'`. Phone numbers (`+86…`) are left alone: they are digits, never a formula.
pub fn guard(cell: &str) -> std::borrow::Cow<'_, str> {
    let phone = cell
        .strip_prefix('+')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    if cell.starts_with(['=', '+', '-', '@']) && !phone {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Writes a table (the header in `english` or Chinese, then `rows`, a cell per column of
/// [`Column::ALL`]) in a format.
pub fn write(format: Format, english: bool, rows: &[Vec<String>]) -> Result<Vec<u8>, String> {
    let header: Vec<&str> = Column::ALL
        .iter()
        .map(|c| if english { c.key() } else { c.chinese() })
        .collect();
    match format {
        Format::Csv => csv::write(&header, rows),
        Format::Xlsx => xlsx::write(&header, rows, english),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_bom_and_chinese_header() {
        let rows = vec![vec![
            "user".into(),
            "张三".into(),
            "zhang.san".into(),
            "Sales/North".into(),
            "=cmd".into(),
            "1001".into(),
            "+8613800138000".into(),
            "".into(),
            "zs@example.com".into(),
        ]];
        for english in [true, false] {
            let bytes = write(Format::Csv, english, &rows).expect("csv");
            assert!(bytes.starts_with("\u{feff}".as_bytes()));
            let t = read(&bytes).expect("read");
            assert_eq!(t.columns, Column::ALL);
            assert_eq!(t.rows.len(), 1);
            assert_eq!(t.rows[0].get(Column::Title), Some("=cmd"));
            assert_eq!(t.rows[0].get(Column::Mobile), Some("+8613800138000"));
            assert_eq!(t.rows[0].line, 2);
        }
    }

    #[test]
    fn xlsx_round_trip() {
        let rows = vec![vec![
            "contact".into(),
            "John Smith".into(),
            "".into(),
            "Sales".into(),
            "Buyer".into(),
            "2001".into(),
            "".into(),
            "01012345678".into(),
            "".into(),
        ]];
        let bytes = write(Format::Xlsx, true, &rows).expect("xlsx");
        let t = read(&bytes).expect("read");
        assert_eq!(t.rows[0].get(Column::Landline), Some("01012345678"));
        assert_eq!(t.rows[0].get(Column::Name), Some("John Smith"));
    }

    #[test]
    fn refuses_bad_headers_and_files() {
        assert_eq!(read(b""), Err(FileError::Empty));
        assert!(matches!(
            read(b"kind,nom\n"),
            Err(FileError::UnknownColumn(..))
        ));
        assert_eq!(read(b"kind\n"), Err(FileError::MissingColumn("name")));
        assert!(matches!(
            read(b"kind,name,name\n"),
            Err(FileError::DuplicateColumn(_))
        ));
        assert!(matches!(
            read(b"PK\x03\x04garbage"),
            Err(FileError::Malformed(_))
        ));
        assert!(matches!(
            read(b"kind,name\nuser,a,b\n"),
            Err(FileError::Malformed(_))
        ));
        let mut many = b"kind,name\n".to_vec();
        for _ in 0..=MAX_ROWS {
            many.extend_from_slice(b"contact,x\n");
        }
        assert_eq!(read(&many), Err(FileError::TooManyRows));
        let long = format!("kind,name\ncontact,{}\n", "x".repeat(MAX_CELL + 1));
        assert!(matches!(
            read(long.as_bytes()),
            Err(FileError::Malformed(_))
        ));
    }

    #[test]
    fn guards_formulas_but_not_phone_numbers() {
        assert_eq!(guard("=1+1"), "'=1+1");
        assert_eq!(guard("+8613800138000"), "+8613800138000");
        assert_eq!(guard("-x"), "'-x");
        assert_eq!(unguard("'=1+1"), "=1+1");
        assert_eq!(unguard("'abc"), "'abc");
    }
}
