//! The HATS margin cache of a catalogue (hats-import's `margin_threshold` convention): for each
//! partition, the rows of its neighbours that lie within the threshold of its edge, so a
//! cross-match at a partition's edge (LSDB) finds counterparts on the other side.
//!
//! As hats-import does it: the margin order is the deepest order whose pixels are still at least
//! the threshold apart (hats' estimate: minimum distance = average size / 1.6); a row belongs to
//! partition P's margin when its pixel at that order touches P (edge or corner) from outside. No
//! finer distance cut, so a margin holds up to one margin-order pixel (12.9″ at 5″). The margin is
//! a HATS catalogue of its own beside the catalogue, `<out>_<threshold>arcs`, with the catalogue's
//! schema and metadata, leaves named by the partition they border.

use super::sky::{HEALPIX_ORDER, Partition, partition_of, pixel_at};
use super::write::{Dataset, footer, write_common_metadata, write_hats_index, write_metadata, write_rows};
use super::{CatalogError, Result};
use crate::schema::columns::catalog as cat;
use arrow::array::{AsArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{Int64Type, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// hats-import's default margin: 5 arcseconds.
pub const DEFAULT_THRESHOLD_ARCSEC: f64 = 5.0;

/// The deepest HEALPix order whose pixels are at least `threshold_arcsec` apart, by hats' estimate
/// (`margin2order`: average pixel size = 1.6 × minimum distance).
pub fn margin_order(threshold_arcsec: f64) -> u8 {
    let avg_size_rad = (1.6 * threshold_arcsec / 3600.0).to_radians();
    let order = ((std::f64::consts::PI / 3.0).sqrt() / avg_size_rad).log2().floor();
    order.clamp(0.0, f64::from(HEALPIX_ORDER)) as u8
}

/// The margin directory of a HATS catalogue at `out`: `<out>_5arcs` for 5″, as hats-import names it.
pub fn margin_dir(out: &Path, threshold_arcsec: f64) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "catalog".into());
    out.with_file_name(format!("{name}_{threshold_arcsec}arcs"))
}

/// The partitions (indices into `parts`) whose margin holds a row at `h29`: those touched from
/// outside by the row's pixel at `order`.
pub fn margins_of(parts: &[Partition], h29: i64, order: u8) -> Vec<usize> {
    let pixel = pixel_at(h29, order);
    let own = partition_of(parts, h29);
    let shift = 2 * u32::from(HEALPIX_ORDER - order);
    let mut out: Vec<usize> = cdshealpix::nested::neighbours(order, pixel, false)
        .values_vec()
        .into_iter()
        .filter_map(|n| partition_of(parts, (n << shift) as i64))
        .filter(|&i| Some(i) != own)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Writes the margin cache of the HATS catalogue whose leaves are `leaves` (in `parts` order) at
/// `root` (a temporary directory renamed into place by the caller); returns its rows.
#[allow(clippy::too_many_arguments)]
pub fn write_margin(
    root: &Path,
    name: &str,
    primary: &str,
    catalogue_root: &Path,
    parts: &[Partition],
    schema: &SchemaRef,
    kv: &[(String, String)],
    threshold_arcsec: f64,
) -> Result<u64> {
    let order = margin_order(threshold_arcsec);
    let deepest = parts.iter().map(|p| p.order).max().unwrap_or(0);
    if order <= deepest {
        return Err(CatalogError::Invalid(format!(
            "a margin of {threshold_arcsec}″ needs pixels of order {order}, no deeper than the partitions (order \
             {deepest}): give a smaller --margin-threshold or a larger --max-rows"
        )));
    }
    // One pass over the leaves: each row goes to the margins it touches, kept as (position,
    // leaf, row) so the margin leaves come out sorted the same way every run.
    let mut chunks: Vec<RecordBatch> = Vec::new();
    let mut by_target: BTreeMap<usize, Vec<(i64, usize, u32)>> = BTreeMap::new();
    for part in parts {
        let leaf = catalogue_root.join(part.path());
        let file = std::fs::File::open(&leaf).map_err(|e| CatalogError::io(&leaf, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| CatalogError::parquet(leaf.clone(), e))?;
        for batch in reader {
            let batch = batch.map_err(|e| CatalogError::arrow(leaf.clone(), e))?;
            let h = batch.column_by_name(cat::_HEALPIX_29).expect("catalogue schema").as_primitive::<Int64Type>();
            let mut taken: Vec<u32> = Vec::new();
            let mut targets: Vec<Vec<usize>> = Vec::new();
            for (r, &h29) in h.values().iter().enumerate() {
                let to = margins_of(parts, h29, order);
                if !to.is_empty() {
                    taken.push(r as u32);
                    targets.push(to);
                }
            }
            if taken.is_empty() {
                continue;
            }
            let rows = take_record_batch(&batch, &UInt32Array::from(taken.clone()))
                .map_err(|e| CatalogError::arrow(leaf.clone(), e))?;
            let chunk = chunks.len();
            let hk =
                rows.column_by_name(cat::_HEALPIX_29).expect("catalogue schema").as_primitive::<Int64Type>().clone();
            chunks.push(rows);
            for (k, to) in targets.into_iter().enumerate() {
                for t in to {
                    by_target.entry(t).or_default().push((hk.value(k), chunk, k as u32));
                }
            }
        }
    }
    let mut leaves = Vec::new();
    let mut margin_parts = Vec::new();
    let mut total = 0;
    for (target, mut rows) in by_target {
        rows.sort_unstable();
        let part = Partition { rows: rows.len() as u64, ..parts[target] };
        let path = root.join(part.path());
        let pieces: Vec<RecordBatch> = rows
            .chunk_by(|a, b| a.1 == b.1)
            .map(|run| take_record_batch(&chunks[run[0].1], &UInt32Array::from_iter_values(run.iter().map(|r| r.2))))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| CatalogError::arrow(path.clone(), e))?;
        let batch = concat_batches(&chunks[0].schema(), &pieces).map_err(|e| CatalogError::arrow(path.clone(), e))?;
        let dir = path.parent().expect("leaf paths have directories");
        std::fs::create_dir_all(dir).map_err(|e| CatalogError::io(dir, e))?;
        total += write_rows(&path, &batch, kv)?;
        leaves.push((part, footer(&path)?));
        margin_parts.push(part);
    }
    std::fs::create_dir_all(root.join("dataset")).map_err(|e| CatalogError::io(root, e))?;
    write_common_metadata(&root.join("dataset/_common_metadata"), schema, kv)?;
    if !leaves.is_empty() {
        write_metadata(&root.join("dataset/_metadata"), &leaves)?;
    }
    write_hats_index(root, &margin_parts, total, &Dataset::Margin { name, primary, threshold_arcsec })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_orders_are_those_of_hats() {
        // hats' margin2order: 1″ → 17, 2″ → 16, 5″ → 14, 10″ → 13, 30″ → 12, 60″ → 11.
        for (arcsec, order) in [(1.0, 17), (2.0, 16), (5.0, 14), (10.0, 13), (30.0, 12), (60.0, 11)] {
            assert_eq!(margin_order(arcsec), order, "{arcsec}″");
        }
        assert_eq!(margin_dir(Path::new("out/catalog"), 5.0), Path::new("out/catalog_5arcs"));
    }

    /// Rows in a neighbour partition go to a partition's margin exactly when their margin-order
    /// pixel is in its external edge (cdshealpix's own ring, an independent reference).
    #[test]
    fn a_row_is_in_a_margin_exactly_when_its_pixel_touches_the_partition() {
        let order = margin_order(5.0);
        let a = Partition { order: 3, pixel: 300, rows: 1 };
        let ring = cdshealpix::nested::external_edge(3, a.pixel, order - 3);
        let shift = 2 * u32::from(HEALPIX_ORDER - order);
        // Every order-3 pixel around `a`, so every ring cell has a partition.
        let mut parts: Vec<Partition> = cdshealpix::nested::neighbours(3, a.pixel, true)
            .values_vec()
            .into_iter()
            .map(|p| Partition { order: 3, pixel: p, rows: 1 })
            .collect();
        crate::catalog::sky::sort_partitions(&mut parts);
        let ia = parts.iter().position(|p| p.pixel == a.pixel).unwrap();
        for &cell in ring.iter() {
            assert!(margins_of(&parts, (cell << shift) as i64, order).contains(&ia), "ring cell {cell}");
        }
        // Cells of the neighbours one step further from `a` are not in its margin.
        let second: Vec<u64> = ring
            .iter()
            .flat_map(|&c| cdshealpix::nested::neighbours(order, c, false).values_vec())
            .filter(|c| !ring.contains(c) && c >> (2 * (order - 3)) != a.pixel)
            .collect();
        assert!(!second.is_empty());
        for cell in second {
            if partition_of(&parts, (cell << shift) as i64).is_some() {
                assert!(!margins_of(&parts, (cell << shift) as i64, order).contains(&ia), "cell {cell}");
            }
        }
        // A partition's own rows are never in its own margin.
        let inside = (a.pixel << (2 * (order - 3))) << shift;
        assert!(!margins_of(&parts, inside as i64, order).contains(&ia));
    }
}
