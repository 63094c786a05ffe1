#![no_main]
//! Directory CSV reader: never panics; what it reads stays within the bounds (rows, cell
//! length); written back as CSV (the export's writer) it reads back to the same cells.
use conclave_directory_formats::{Column, Format, MAX_CELL, MAX_ROWS, csv, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(table) = csv::read(data) else {
        return;
    };
    assert!(table.rows.len() <= MAX_ROWS);
    for row in &table.rows {
        for (_, cell) in &row.cells {
            assert!(cell.chars().count() <= MAX_CELL);
        }
    }
    let rows: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| {
            Column::ALL
                .iter()
                .map(|c| r.get(*c).unwrap_or("").to_owned())
                .collect()
        })
        .collect();
    let Ok(bytes) = write(Format::Csv, true, &rows) else {
        return;
    };
    let again = csv::read(&bytes).expect("our own CSV reads back");
    let back: Vec<Vec<String>> = again
        .rows
        .iter()
        .map(|r| {
            Column::ALL
                .iter()
                .map(|c| r.get(*c).unwrap_or("").to_owned())
                .collect()
        })
        .collect();
    let nonblank: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r.iter().any(|c| !c.is_empty()))
        .collect();
    assert_eq!(back.iter().collect::<Vec<_>>(), nonblank);
});
