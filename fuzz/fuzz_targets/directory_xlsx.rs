#![no_main]
//! Directory XLSX reader (a ZIP archive inflated against a budget, then calamine): never
//! panics, never inflates past the budget; what it reads stays within the bounds.
use conclave_directory_formats::{MAX_CELL, MAX_ROWS, xlsx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = xlsx::read(data) {
        assert!(table.rows.len() <= MAX_ROWS);
        for row in &table.rows {
            for (_, cell) in &row.cells {
                assert!(cell.chars().count() <= MAX_CELL);
            }
        }
    }
});
