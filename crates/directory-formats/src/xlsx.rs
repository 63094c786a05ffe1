//! XLSX directory files: the first worksheet is read (calamine); exports and templates are
//! written with every cell as text (rust_xlsxwriter), so numbers keep their leading `+` and
//! zeros.
//!
//! An XLSX file is a ZIP archive, so before calamine sees it every entry is inflated once
//! into nothing with a budget: more than [`MAX_INFLATED`] bytes in all (a ZIP bomb) or more
//! than [`MAX_ENTRIES`] entries refuses the file — whatever the archive's headers claim.

use super::{FileError, Table};
use std::io::{Cursor, Read};

/// The most bytes all of an XLSX file's entries may inflate to.
pub const MAX_INFLATED: u64 = 64 * 1024 * 1024;
/// The most entries an XLSX archive may have.
pub const MAX_ENTRIES: usize = 500;

fn malformed(e: impl std::fmt::Display) -> FileError {
    FileError::Malformed(format!("not a valid XLSX file: {e}"))
}

/// Inflates every entry against the budget.
fn check_archive(bytes: &[u8]) -> Result<(), FileError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(malformed)?;
    if archive.len() > MAX_ENTRIES {
        return Err(malformed(format!("more than {MAX_ENTRIES} parts")));
    }
    let mut left = MAX_INFLATED;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(malformed)?;
        let read =
            std::io::copy(&mut entry.take(left + 1), &mut std::io::sink()).map_err(malformed)?;
        if read > left {
            return Err(FileError::Malformed(format!(
                "the XLSX file inflates to more than {} MiB",
                MAX_INFLATED / 1024 / 1024
            )));
        }
        left -= read;
    }
    Ok(())
}

pub fn read(bytes: &[u8]) -> Result<Table, FileError> {
    use calamine::{Data, Reader, Xlsx};
    check_archive(bytes)?;
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(malformed)?;
    let first = workbook
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| malformed("it has no worksheet"))?;
    let range = workbook.worksheet_range(&first).map_err(malformed)?;
    if range.height() > super::MAX_ROWS + 1_000 {
        return Err(FileError::TooManyRows);
    }
    if range.width() > 1_000 {
        return Err(FileError::TooManyColumns);
    }
    let records = range.rows().map(|row| {
        Ok(row
            .iter()
            .map(|cell| match cell {
                Data::Empty => String::new(),
                Data::String(s) => s.clone(),
                // A number typed into a text column: 1001 comes as 1001.0.
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
                Data::Float(f) => f.to_string(),
                Data::Int(i) => i.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::Error(e) => format!("#{e:?}"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>())
    });
    super::table(records)
}

/// The header and rows as an XLSX workbook: a "Directory" sheet of text cells and a "Help"
/// sheet that explains the columns.
pub fn write(header: &[&str], rows: &[Vec<String>], english: bool) -> Result<Vec<u8>, String> {
    use rust_xlsxwriter::{Format, Workbook};
    let err = |e: rust_xlsxwriter::XlsxError| e.to_string();
    let mut book = Workbook::new();
    let text = Format::new().set_num_format("@");
    let bold = Format::new().set_bold().set_num_format("@");
    let sheet = book.add_worksheet();
    sheet
        .set_name(if english { "Directory" } else { "通讯录" })
        .map_err(err)?;
    for (col, name) in header.iter().enumerate() {
        let col = col as u16;
        sheet.set_column_format(col, &text).map_err(err)?;
        sheet.set_column_width(col, 18).map_err(err)?;
        sheet
            .write_string_with_format(0, col, *name, &bold)
            .map_err(err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (col, cell) in row.iter().enumerate() {
            if !cell.is_empty() {
                sheet
                    .write_string_with_format(r as u32 + 1, col as u16, super::guard(cell), &text)
                    .map_err(err)?;
            }
        }
    }
    let help = book.add_worksheet();
    help.set_name(if english { "Help" } else { "说明" })
        .map_err(err)?;
    help.set_column_width(0, 110).map_err(err)?;
    let lines: &[&str] = if english { &HELP_EN } else { &HELP_ZH };
    for (i, line) in lines.iter().enumerate() {
        help.write_string(i as u32, 0, *line).map_err(err)?;
    }
    book.save_to_buffer().map_err(err)
}

const HELP_EN: [&str; 9] = [
    "Fill in the first sheet, one person per row; only the first sheet is read.",
    "kind: user (an account, needs login_name) or contact (the enterprise address book).",
    "name: required. department: a path such as Sales/North; missing departments are created.",
    "A user is matched by login_name; a contact by extension, else by email. Matched people are updated.",
    "extension: 2 to 15 digits. mobile, landline: an optional + then 3 to 20 digits.",
    "An empty cell clears the field; a column left out of the file leaves the field as it is.",
    "New users get no password: an administrator sets one before they log in.",
    "Upload it on the Directory page: the dry run lists what would change, then apply.",
    "At most 10,000 rows.",
];

const HELP_ZH: [&str; 9] = [
    "请在第一张工作表中填写，每行一人；只读取第一张工作表。",
    "类型：user（账号，须填登录名）或 contact（企业通讯录联系人）。",
    "姓名必填。部门：如 销售/华北 的路径，不存在的部门会自动创建。",
    "用户按登录名匹配；联系人按分机匹配，没有分机时按邮箱匹配。匹配到的人会被更新。",
    "分机：2 到 15 位数字。手机、座机：可选的 + 加 3 到 20 位数字。",
    "空单元格会清空该字段；文件中没有的列不会改变该字段。",
    "新用户没有密码：需管理员设置后才能登录。",
    "在“通讯录”页面上传：先预检列出将要发生的变化，再确认导入。",
    "最多 10,000 行。",
];
