//! Binary tables for mock files with exactly the columns (names, order, types) of real files,
//! taken from `data/mock/desi_tables.columns`. Columns the mock has values for are filled with
//! them; the others hold zeros or blanks of their type, as unset columns do in real files.

use fitsio::FitsFile;
use fitsio::tables::{ColumnDataType, ColumnDescription};
use std::collections::HashMap;

const TABLES: &str = include_str!("../../data/mock/desi_tables.columns");

/// Values for one column, one entry per row (times the repeat count for vector columns).
#[derive(Debug, Clone)]
pub enum Column {
    I64(Vec<i64>),
    I32(Vec<i32>),
    F64(Vec<f64>),
    F32(Vec<f32>),
    Str(Vec<String>),
}

/// The (name, TFORM) list of a template table, e.g. `coadd.FIBERMAP`.
pub fn template(table: &str) -> Vec<(String, String)> {
    TABLES
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            (it.next()? == table).then(|| Some((it.next()?.to_string(), it.next()?.to_string()))).flatten()
        })
        .collect()
}

fn parse_tform(tform: &str) -> (usize, char) {
    let digits: String = tform.chars().take_while(char::is_ascii_digit).collect();
    let code = tform[digits.len()..].chars().next().unwrap_or('E');
    (digits.parse().unwrap_or(1), code)
}

/// Creates table `extname` with the template's columns and `nrows` rows, writing `values`.
pub fn write_table(
    f: &mut FitsFile,
    extname: &str,
    table: &str,
    nrows: usize,
    values: &HashMap<&str, Column>,
) -> Result<(), String> {
    write_table_without(f, extname, table, nrows, values, &[])
}

/// [`write_table`] leaving out the columns in `omit` (to damage a file on purpose).
pub fn write_table_without(
    f: &mut FitsFile,
    extname: &str,
    table: &str,
    nrows: usize,
    values: &HashMap<&str, Column>,
    omit: &[&str],
) -> Result<(), String> {
    let cols: Vec<(String, String)> =
        template(table).into_iter().filter(|(n, _)| !omit.contains(&n.as_str())).collect();
    assert!(!cols.is_empty(), "no template for {table}");
    let e = |e: fitsio::errors::Error| format!("{extname}: {e}");
    let descriptions: Vec<_> = cols
        .iter()
        .map(|(name, tform)| {
            let (repeat, code) = parse_tform(tform);
            let t = match code {
                'K' => ColumnDataType::LongLong,
                'J' => ColumnDataType::Int,
                'I' => ColumnDataType::Short,
                'B' => ColumnDataType::Byte,
                'D' => ColumnDataType::Double,
                'A' => ColumnDataType::String,
                _ => ColumnDataType::Float,
            };
            ColumnDescription::new(name.as_str()).with_type(t).that_repeats(repeat).create()
        })
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let hdu = f.create_table(extname, &descriptions).map_err(e)?;
    if nrows == 0 {
        return Ok(());
    }
    for (name, tform) in &cols {
        let (repeat, code) = parse_tform(tform);
        let n = nrows * if code == 'A' { 1 } else { repeat };
        match (values.get(name.as_str()), code) {
            (Some(Column::I64(v)), _) => hdu.write_col(f, name, v),
            (Some(Column::I32(v)), _) => hdu.write_col(f, name, v),
            (Some(Column::F64(v)), _) => hdu.write_col(f, name, v),
            (Some(Column::F32(v)), _) => hdu.write_col(f, name, v),
            (Some(Column::Str(v)), _) => hdu.write_col(f, name, v),
            (None, 'K') => hdu.write_col(f, name, &vec![0i64; n]),
            (None, 'J' | 'I' | 'B') => hdu.write_col(f, name, &vec![0i32; n]),
            (None, 'D') => hdu.write_col(f, name, &vec![0f64; n]),
            (None, 'A') => hdu.write_col(f, name, &vec![String::new(); n]),
            (None, _) => hdu.write_col(f, name, &vec![0f32; n]),
        }
        .map_err(e)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_hold_the_real_columns() {
        let fibermap = template("coadd.FIBERMAP");
        assert_eq!(fibermap.len(), 70);
        assert_eq!(fibermap[0], ("TARGETID".to_string(), "K".to_string()));
        assert!(fibermap.iter().any(|(n, t)| n == "OBJTYPE" && t == "3A"));
        assert_eq!(template("redrock.REDSHIFTS").len(), 11);
        assert_eq!(parse_tform("10D"), (10, 'D'));
        assert_eq!(parse_tform("K"), (1, 'K'));
    }
}
