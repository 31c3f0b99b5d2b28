//! What the examples share: reading a data set bundled with the Python package.

use backprop::{Error, Result};
use std::io::Read;

/// The text of `python/backprop_rs/datasets/NAME` (a gzip file), for the example `op`.
pub fn bundled_text(name: &str, op: &'static str) -> Result<String> {
    let path = format!(
        "{}/../../python/backprop_rs/datasets/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let file = std::fs::File::open(&path).map_err(|e| Error::Io {
        op,
        msg: format!("{path}: {e}"),
    })?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| Error::Io {
            op,
            msg: e.to_string(),
        })?;
    Ok(text)
}
