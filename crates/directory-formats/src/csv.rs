//! CSV directory files: UTF-8 (a byte-order mark, as Excel writes, is skipped), comma
//! separated, RFC 4180 quoting.

use super::{FileError, Table};

pub fn read(bytes: &[u8]) -> Result<Table, FileError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FileError::Malformed(format!(
            "the CSV file is not UTF-8 (at byte {}); save it as \"CSV UTF-8\"",
            e.valid_up_to()
        ))
    })?;
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let records = reader.records().map(|r| {
        r.map(|record| record.iter().map(str::to_owned).collect::<Vec<_>>())
            .map_err(|e| FileError::Malformed(format!("not a valid CSV file: {e}")))
    });
    super::table(records)
}

/// The header and rows as CSV, with a byte-order mark so spreadsheets read it as UTF-8.
pub fn write(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, String> {
    let mut out = "\u{feff}".as_bytes().to_vec();
    {
        let mut writer = ::csv::Writer::from_writer(&mut out);
        writer.write_record(header).map_err(|e| e.to_string())?;
        for row in rows {
            writer
                .write_record(row.iter().map(|c| super::guard(c).into_owned()))
                .map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| e.to_string())?;
    }
    Ok(out)
}
