//! Checkpoints in the [safetensors] format: an 8-byte little-endian header length, a JSON header
//! naming each tensor's dtype, shape and byte range, then the raw little-endian data. No pickle,
//! ever: loading a checkpoint never runs code.
//!
//! The `safetensors` crate writes the files and parses them too, but a checkpoint is untrusted
//! input, so the loader first runs its own strict pass over the header and only then asks the
//! crate. The own pass exists because the crate (a) silently keeps the last of two duplicate JSON
//! keys (serde does), (b) reports several different faults as one "invalid offset" without saying
//! which bytes, and (c) has no notion of which dtypes this engine supports. Every size in the
//! header is checked against the real length of the file before a single tensor byte is
//! allocated, so a 100-byte file cannot make us reserve gigabytes.
//!
//! ```
//! use backprop::{io, Device, Tensor};
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], Device::Cpu)?;
//! let step = Tensor::from_vec(vec![7i64], [], Device::Cpu)?;
//! let bytes = io::save_to_bytes(&[("fc.weight".to_string(), w), ("step".to_string(), step)], None)?;
//! let ckpt = io::load_from_bytes(&bytes)?;
//! assert_eq!(ckpt.get("fc.weight").unwrap().to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
//! assert_eq!(ckpt.get("step").unwrap().item()?, 7.0);
//! # Ok::<(), backprop::Error>(())
//! ```
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use crate::{DType, Device, Element, Error, Result, Shape, Tensor};
use safetensors::tensor::{Dtype as StDtype, Metadata, SafeTensorError, SafeTensors, View};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

/// Largest header accepted (and written), in bytes: the same bound the `safetensors` crate uses,
/// so that anything we write, other tools read.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The reserved header key holding the free-form string metadata.
pub const METADATA_KEY: &str = "__metadata__";

/// Length of the little-endian `u64` that starts every file.
const LEN_PREFIX: usize = 8;

/// Tensor data is decoded through a scratch buffer of this many bytes (a multiple of every
/// element size), so loading a file costs its tensors plus this, not twice the file.
const CHUNK: usize = 1 << 16;

/// What a checkpoint file holds: named CPU tensors, in the order their bytes appear in the file,
/// and the string metadata of the header's `__metadata__` entry (empty when there is none).
///
/// ```
/// use backprop::{io, Device, Tensor};
/// use std::collections::BTreeMap;
/// let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
/// let t = Tensor::from_vec(vec![true as u8, false as u8], [2], Device::Cpu)?;
/// let ckpt = io::load_from_bytes(&io::save_to_bytes(&[("mask".into(), t)], Some(&meta))?)?;
/// assert_eq!(ckpt.names(), vec!["mask"]);
/// assert_eq!(ckpt.metadata["epoch"], "3");
/// # Ok::<(), backprop::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    /// `(name, tensor)` pairs ordered by their position in the file's data section (which is
    /// the order the safetensors writer chose: by dtype alignment, then by name).
    pub tensors: Vec<(String, Tensor)>,
    /// The header's `__metadata__` map.
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// The tensor called `name`, if the checkpoint has one.
    ///
    /// ```
    /// # use backprop::{io, Device, Tensor};
    /// let t = Tensor::from_vec(vec![0.5f64], [1], Device::Cpu)?;
    /// let ckpt = io::load_from_bytes(&io::save_to_bytes(&[("x".into(), t)], None)?)?;
    /// assert!(ckpt.get("x").is_some() && ckpt.get("y").is_none());
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Tensor names in file order.
    ///
    /// ```
    /// # use backprop::io::Checkpoint;
    /// assert!(Checkpoint::default().names().is_empty());
    /// ```
    pub fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|(n, _)| n.as_str()).collect()
    }
}

// ====================================================================== saving

/// One tensor, encoded as the little-endian bytes the file will hold.
struct Encoded {
    dtype: StDtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> StDtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_st_dtype(d: DType) -> StDtype {
    match d {
        DType::F32 => StDtype::F32,
        DType::F64 => StDtype::F64,
        DType::I64 => StDtype::I64,
        DType::Bool => StDtype::BOOL,
        DType::F16 => StDtype::F16,
        DType::BF16 => StDtype::BF16,
        DType::I32 => StDtype::I32,
        DType::I16 => StDtype::I16,
        DType::I8 => StDtype::I8,
        DType::U8 => StDtype::U8,
    }
}

/// Element types with a fixed little-endian byte encoding (the safetensors byte order).
trait LeBytes: Element {
    const WIDTH: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

macro_rules! le_bytes {
    ($t:ty, $n:expr) => {
        impl LeBytes for $t {
            const WIDTH: usize = $n;
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn get(b: &[u8]) -> Self {
                // Callers hand in `chunks_exact(WIDTH)` pieces, so the copy never sees another length.
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                <$t>::from_le_bytes(a)
            }
        }
    };
}
le_bytes!(f32, 4);
le_bytes!(f64, 8);
le_bytes!(i64, 8);
le_bytes!(u8, 1);
le_bytes!(i32, 4);
le_bytes!(i16, 2);
le_bytes!(i8, 1);

/// The bytes as they are: float16 / bfloat16 / uint8 have no `from_le_bytes` of their own.
macro_rules! le_bits {
    ($t:ty, $n:expr, $to:expr, $from:expr) => {
        impl LeBytes for $t {
            const WIDTH: usize = $n;
            #[inline(always)]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&($to)(self));
            }
            #[inline(always)]
            fn get(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(b);
                ($from)(a)
            }
        }
    };
}
le_bits!(
    half::f16,
    2,
    half::f16::to_le_bytes,
    half::f16::from_le_bytes
);
le_bits!(
    half::bf16,
    2,
    half::bf16::to_le_bytes,
    half::bf16::from_le_bytes
);
le_bits!(crate::UInt8, 1, |v: crate::UInt8| [v.0], |a: [u8; 1]| {
    crate::UInt8(a[0])
});

fn encode_slice<T: LeBytes>(name: &str, x: Option<&[T]>) -> Result<Vec<u8>> {
    let x = x.ok_or_else(|| {
        Error::Checkpoint(format!(
            "save: tensor {name:?}: its storage does not hold {} data",
            T::DTYPE
        ))
    })?;
    let mut out = Vec::new();
    out.try_reserve_exact(x.len() * T::WIDTH).map_err(|_| {
        Error::Checkpoint(format!(
            "save: tensor {name:?}: out of memory encoding {} elements",
            x.len()
        ))
    })?;
    for &v in x {
        v.put(&mut out);
    }
    Ok(out)
}

/// Reads a tensor back from the GPU if needed, makes it contiguous, and encodes its elements.
fn encode(name: &str, t: &Tensor) -> Result<Encoded> {
    // `detach` so that saving never records a graph node; `contiguous` writes strided views
    // (transposes, slices, broadcasts) out as the plain C-order arrays the format requires.
    let t = t.detach().to_device(Device::Cpu)?.contiguous()?;
    // an empty view may keep an offset past its (empty) storage: it has no bytes to read
    let (off, n) = match t.numel() {
        0 => (0, 0),
        n => (t.layout().offset(), n),
    };
    let s = t.storage();
    let cpu = s.as_cpu().ok_or_else(|| {
        Error::Checkpoint(format!(
            "save: tensor {name:?} did not come back to the cpu"
        ))
    })?;
    let data = match t.dtype() {
        DType::F32 => encode_slice::<f32>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::F64 => encode_slice::<f64>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::I64 => encode_slice::<i64>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::Bool => encode_slice::<u8>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::F16 => {
            encode_slice::<half::f16>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?
        }
        DType::BF16 => {
            encode_slice::<half::bf16>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?
        }
        DType::I32 => encode_slice::<i32>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::I16 => encode_slice::<i16>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::I8 => encode_slice::<i8>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?,
        DType::U8 => {
            encode_slice::<crate::UInt8>(name, cpu.as_slice().and_then(|x| x.get(off..off + n)))?
        }
    };
    Ok(Encoded {
        dtype: to_st_dtype(t.dtype()),
        shape: t.dims().to_vec(),
        data,
    })
}

fn st_error(op: &'static str, e: SafeTensorError) -> Error {
    match e {
        SafeTensorError::IoError(io) => Error::Io {
            op,
            msg: io.to_string(),
        },
        other => Error::Checkpoint(format!("{op}: safetensors: {other}")),
    }
}

/// The bytes of a safetensors file holding `tensors` and, if given, the string `metadata`.
///
/// Names must be unique and must not be `__metadata__` (the header reserves it). GPU tensors
/// are read back first; strided views are written contiguous.
///
/// ```
/// use backprop::{io, Device, Tensor};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], Device::Cpu)?;
/// let xt = x.transpose(0usize, 1)?; // a non-contiguous view
/// let bytes = io::save_to_bytes(&[("xt".to_string(), xt)], None)?;
/// let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
/// assert_eq!(bytes.len(), 8 + header_len + 6 * 4);
/// let back = io::load_from_bytes(&bytes)?;
/// assert_eq!(back.get("xt").unwrap().to_vec::<f32>()?, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn save_to_bytes(
    tensors: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let encoded = encode_all(tensors)?;
    let views: Vec<(&str, &Encoded)> = tensors
        .iter()
        .map(|(n, _)| n.as_str())
        .zip(encoded.iter())
        .collect();
    let info = metadata.map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    });
    let mut bytes = safetensors::serialize(views, info).map_err(|e| st_error("save", e))?;
    if let Some(m) = metadata {
        sort_metadata(&mut bytes, m);
    }
    Ok(bytes)
}

/// The crate takes the metadata as a `HashMap` and writes it in that map's (randomly seeded)
/// order, so two saves of the same checkpoint would differ. The entries are the same whatever
/// the order, so the sorted text has exactly the same length: rewrite it in place. If the
/// crate's layout is not the expected one, the file is left as written (still valid, just not
/// reproducible).
fn sort_metadata(bytes: &mut [u8], metadata: &BTreeMap<String, String>) {
    const OPEN: &[u8] = b"{\"__metadata__\":";
    let Ok(sorted) = serde_json::to_vec(metadata) else {
        return;
    };
    let start = LEN_PREFIX + OPEN.len();
    let Some(region) = bytes.get(start..start + sorted.len()) else {
        return;
    };
    let same = bytes[LEN_PREFIX..].starts_with(OPEN)
        && serde_json::from_slice::<BTreeMap<String, String>>(region).is_ok_and(|m| &m == metadata);
    if same {
        bytes[start..start + sorted.len()].copy_from_slice(&sorted);
    }
}

fn encode_all(tensors: &[(String, Tensor)]) -> Result<Vec<Encoded>> {
    let mut seen = HashSet::with_capacity(tensors.len());
    for (name, _) in tensors {
        if name == METADATA_KEY {
            return Err(Error::Checkpoint(format!("save: {METADATA_KEY:?} is reserved by the safetensors header and cannot name a tensor")));
        }
        // Two tensors under one name would leave the header with one entry and the data with
        // two ranges: a file no reader accepts.
        if !seen.insert(name.as_str()) {
            return Err(Error::Checkpoint(format!(
                "save: two tensors are named {name:?}; names must be unique"
            )));
        }
    }
    tensors.iter().map(|(n, t)| encode(n, t)).collect()
}

/// Writes `tensors` (and optional string `metadata`) to `path` as a safetensors file.
///
/// The file is written next to `path` under a temporary name and renamed over it at the end, so
/// a crash or a full disk never leaves a half-written checkpoint where a good one was.
///
/// ```
/// use backprop::{io, DType, Device, Tensor};
/// let path = std::env::temp_dir().join(format!("backprop-doc-save-{}.safetensors", std::process::id()));
/// let w = Tensor::randn([3, 2], DType::F64, Device::Cpu)?;
/// io::save(&[("w".to_string(), w.clone())], None, &path)?;
/// let back = io::load(&path)?;
/// assert_eq!(back.get("w").unwrap().to_vec::<f64>()?, w.to_vec::<f64>()?);
/// std::fs::remove_file(&path).ok();
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn save(
    tensors: &[(String, Tensor)],
    metadata: Option<&BTreeMap<String, String>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    // `safetensors::serialize_to_file` streams, but through a tempfile created with mode 0600,
    // which would leave checkpoints unreadable to the rest of a team; we build the bytes with
    // `serialize` and write them ourselves so the file gets the usual umask permissions. The
    // cost is one extra in-memory copy of the checkpoint while saving.
    let bytes = save_to_bytes(tensors, metadata)?;
    write_atomically(path, &bytes)
}

fn io_error(op: &'static str, what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        op,
        msg: format!("cannot {what} '{}': {e}", path.display()),
    }
}

/// The file a save to `path` must replace: `path` itself, or, when `path` is a symlink (or a
/// chain of them, dangling or not), the file it finally points to, so that the save writes
/// through the link as `open(path, "w")` would instead of replacing the link.
fn save_target(path: &Path) -> Result<std::path::PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link =
                    std::fs::read_link(&p).map_err(|e| io_error("save", "read the link", &p, e))?;
                p = match p.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(m) if !m.file_type().is_file() => {
                let kind = if m.is_dir() {
                    "a directory"
                } else {
                    "not a regular file (a FIFO, socket or device)"
                };
                return Err(Error::Io {
                    op: "save",
                    msg: format!(
                        "refusing to save over '{}': it is {kind}; give the path of a file",
                        p.display()
                    ),
                });
            }
            _ => return Ok(p), // a regular file, or nothing yet
        }
    }
    Err(Error::Io {
        op: "save",
        msg: format!("'{}': too many levels of symbolic links", path.display()),
    })
}

/// Whether process `pid` is alive (a temporary it owns may still be being written).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        // kill(pid, 0) sends nothing; it fails with ESRCH when no such process exists
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true // without a way to tell, keep every temporary
    }
}

/// Removes the temporaries earlier saves to `target` left behind when their process died
/// mid-write (`.<name>.<pid>.<n>.tmp` whose pid is gone): otherwise each killed save would keep
/// a checkpoint-sized file forever.
fn remove_stale_temporaries(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let mut parts = rest.split('.');
        let (Some(pid), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u64>()) else {
            continue;
        };
        if !process_alive(pid) && e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let target = save_target(path)?;
    let file_name = target.file_name().ok_or_else(|| Error::Io {
        op: "save",
        msg: format!("'{}' does not name a file", path.display()),
    })?;
    remove_stale_temporaries(&target);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = target.with_file_name(tmp_name);
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        // Flush to disk before the rename: otherwise a power cut can leave the new name
        // pointing at an empty file.
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    written.map_err(|e| {
        // Best effort: the temporary may not exist (create failed) or may already be renamed.
        let _ = std::fs::remove_file(&tmp);
        io_error("save", "write", path, e)
    })
}

// ====================================================================== the header, as written

/// One tensor entry as it appears in the JSON header, before any check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInfo {
    dtype: String,
    // u64, not usize: a value past usize::MAX becomes our clear error rather than serde's.
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// The header object, with its keys in file order and duplicates refused. serde_json (like every
/// map type) keeps the last of two equal keys, so a file could otherwise say one thing to us and
/// another to a different reader.
struct RawHeader {
    metadata: Vec<(String, String)>,
    tensors: Vec<(String, RawInfo)>,
}

/// `__metadata__`: string to string, duplicate keys refused.
struct StringMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping strings to strings")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<StringMap, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate key {k:?} in {METADATA_KEY}"
                        )));
                    }
                    let v = map.next_value::<String>().map_err(|e| {
                        de::Error::custom(format!("{METADATA_KEY}[{k:?}] must be a string ({e})"))
                    })?;
                    out.push((k, v));
                }
                Ok(StringMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object mapping tensor names to {dtype, shape, data_offsets}")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawHeader, A::Error> {
                let mut seen = HashSet::new();
                let mut h = RawHeader {
                    metadata: Vec::new(),
                    tensors: Vec::new(),
                };
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate key {k:?} in the header"
                        )));
                    }
                    if k == METADATA_KEY {
                        // `null` means "no metadata", as the safetensors crate reads it.
                        let m = map.next_value::<Option<StringMap>>()?;
                        h.metadata = m.map(|m| m.0).unwrap_or_default();
                    } else {
                        let info = map
                            .next_value::<RawInfo>()
                            .map_err(|e| de::Error::custom(format!("tensor {k:?}: {e}")))?;
                        h.tensors.push((k, info));
                    }
                }
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

// ====================================================================== the header, validated

/// One tensor of a validated header. Offsets are relative to the start of the data section.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    numel: usize,
    start: usize,
    end: usize,
}

/// A header that passed every check: entries sorted by offset, tiling the data section exactly.
#[derive(Debug)]
struct Header {
    entries: Vec<Entry>,
    metadata: BTreeMap<String, String>,
}

fn bad(msg: String) -> Error {
    Error::Checkpoint(msg)
}

/// Every dtype name the safetensors format defines; named so the error can tell "valid file we
/// do not support" apart from "not a dtype at all".
const OTHER_ST_DTYPES: &[&str] = &[
    "F4",
    "F6_E2M3",
    "F6_E3M2",
    "F8_E5M2",
    "F8_E4M3",
    "F8_E8M0",
    "F8_E4M3FNUZ",
    "F8_E5M2FNUZ",
    "U16",
    "U32",
    "C64",
    "U64",
];

fn parse_dtype(name: &str, s: &str) -> Result<DType> {
    match s {
        "F32" => Ok(DType::F32),
        "F64" => Ok(DType::F64),
        "I64" => Ok(DType::I64),
        "BOOL" => Ok(DType::Bool),
        "F16" => Ok(DType::F16),
        "BF16" => Ok(DType::BF16),
        "I32" => Ok(DType::I32),
        "I16" => Ok(DType::I16),
        "I8" => Ok(DType::I8),
        "U8" => Ok(DType::U8),
        other if OTHER_ST_DTYPES.contains(&other) => {
            Err(bad(format!("tensor {name:?}: dtype {other} is valid safetensors but not supported here (backprop has F32, F64, F16, BF16, I64, I32, I16, I8, U8 and BOOL)")))
        }
        other => Err(bad(format!("tensor {name:?}: unknown dtype {other:?} (backprop reads F32, F64, I64 and BOOL)"))),
    }
}

/// Reads the 8-byte prefix and checks the header length against the file's real length.
/// Returns the header length.
fn header_len(prefix: &[u8], file_len: u64) -> Result<usize> {
    if file_len < LEN_PREFIX as u64 || prefix.len() < LEN_PREFIX {
        return Err(bad(format!("file is {file_len} bytes, shorter than the 8-byte header length that starts every safetensors file")));
    }
    let mut a = [0u8; LEN_PREFIX];
    a.copy_from_slice(&prefix[..LEN_PREFIX]);
    let n = u64::from_le_bytes(a);
    let room = file_len - LEN_PREFIX as u64;
    if n > MAX_HEADER_LEN {
        return Err(bad(format!("header length {n} is larger than the {MAX_HEADER_LEN}-byte limit (file is {file_len} bytes)")));
    }
    if n > room {
        return Err(bad(format!("header length {n} runs past the end of the file: only {room} bytes follow the length prefix (file is {file_len} bytes)")));
    }
    // n <= MAX_HEADER_LEN, so it fits in usize on every platform we build for.
    usize::try_from(n).map_err(|_| {
        bad(format!(
            "header length {n} does not fit in memory on this platform"
        ))
    })
}

/// Parses and validates the header bytes of a file whose data section is `data_len` bytes long.
fn parse_header(bytes: &[u8], data_len: usize) -> Result<Header> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "header is not valid UTF-8: {e} (header bytes start at file offset 8)"
        ))
    })?;
    let raw: RawHeader = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "header is not a valid safetensors JSON header: {e}"
        ))
    })?;
    let data_start = LEN_PREFIX + bytes.len();

    let mut entries = Vec::with_capacity(raw.tensors.len());
    for (name, info) in raw.tensors {
        let dtype = parse_dtype(&name, &info.dtype)?;
        let shape = info
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| {
                bad(format!(
                    "tensor {name:?}: shape {:?} has a dimension too large for this platform",
                    info.shape
                ))
            })?;
        // Zero dims make the element count 0, but the other dims still feed stride arithmetic
        // elsewhere in the engine, so their product must fit too.
        let nonzero = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        let Some(nonzero) = nonzero.filter(|n| {
            n.checked_mul(dtype.size_in_bytes())
                .is_some_and(|b| b <= isize::MAX as usize)
        }) else {
            return Err(bad(format!(
                "tensor {name:?}: the element count of shape {:?} × {} bytes per element overflows",
                info.shape,
                dtype.size_in_bytes()
            )));
        };
        let numel = if shape.contains(&0) { 0 } else { nonzero };
        let nbytes = numel * dtype.size_in_bytes();
        let (s, e) = info.data_offsets;
        if e < s {
            return Err(bad(format!(
                "tensor {name:?}: data_offsets [{s}, {e}] end before they start"
            )));
        }
        if e > data_len as u64 {
            return Err(bad(format!(
                "tensor {name:?}: data_offsets [{s}, {e}] run past the end of the data section, which holds {data_len} bytes (file bytes {data_start}..{})",
                data_start + data_len
            )));
        }
        // e <= data_len, so both fit in usize.
        let (start, end) = (s as usize, e as usize);
        if end - start != nbytes {
            return Err(bad(format!(
                "tensor {name:?}: shape {shape:?} of dtype {} needs {numel} × {} = {nbytes} bytes, but data_offsets [{s}, {e}] span {} bytes",
                to_st_dtype(dtype),
                dtype.size_in_bytes(),
                end - start
            )));
        }
        entries.push(Entry {
            name,
            dtype,
            shape,
            numel,
            start,
            end,
        });
    }

    // JSON key order carries no meaning (the format lets writers list tensors in any order), so
    // order by position; ties (empty tensors share an offset) break by name, for determinism.
    entries.sort_by(|a, b| (a.start, a.end, &a.name).cmp(&(b.start, b.end, &b.name)));
    let mut cursor = 0usize;
    let mut prev: Option<&Entry> = None;
    for e in &entries {
        if e.start < cursor {
            let p = prev
                .map(|p| format!(" {:?} [{}, {}]", p.name, p.start, p.end))
                .unwrap_or_default();
            return Err(bad(format!(
                "tensor {:?}: data_offsets [{}, {}] overlap the bytes of tensor{p}",
                e.name, e.start, e.end
            )));
        }
        if e.start > cursor {
            return Err(bad(format!(
                "data section bytes {cursor}..{} (file bytes {}..{}) belong to no tensor: a gap before tensor {:?}",
                e.start,
                data_start + cursor,
                data_start + e.start,
                e.name
            )));
        }
        cursor = e.end;
        prev = Some(e);
    }
    if cursor != data_len {
        return Err(bad(format!(
            "{} trailing bytes after the last tensor: tensors end at data byte {cursor} (file byte {}) but the file is {} bytes",
            data_len - cursor,
            data_start + cursor,
            data_start + data_len
        )));
    }
    Ok(Header {
        entries,
        metadata: raw.metadata.into_iter().collect(),
    })
}

/// The safetensors crate must agree with our reading of the header; if it does not, one of the
/// two parsers has a bug, and refusing the file is the only safe answer.
/// The safetensors crate's view of each tensor: dtype, shape, data offsets.
type TheirEntries = HashMap<String, (StDtype, Vec<usize>, (usize, usize))>;

fn cross_check(entries: &[Entry], theirs: &TheirEntries) -> Result<()> {
    let disagree = |what: &str| {
        Err(bad(format!(
            "header parsers disagree ({what}); refusing the file"
        )))
    };
    if theirs.len() != entries.len() {
        return disagree(&format!("{} tensors vs {}", entries.len(), theirs.len()));
    }
    for e in entries {
        match theirs.get(&e.name) {
            Some((d, shape, offs))
                if *d == to_st_dtype(e.dtype) && *shape == e.shape && *offs == (e.start, e.end) => {
            }
            _ => return disagree(&format!("tensor {:?}", e.name)),
        }
    }
    Ok(())
}

// ====================================================================== loading

/// Decodes one tensor's bytes from `src` into a fresh CPU tensor. Called only for validated
/// entries, so the allocation is bounded by the bytes the file really holds.
fn read_tensor(e: &Entry, src: &mut impl Read, scratch: &mut [u8]) -> Result<Tensor> {
    fn typed<T: LeBytes>(e: &Entry, src: &mut impl Read, scratch: &mut [u8]) -> Result<Tensor> {
        // from the buffer pool when a buffer of this size is free (repeated loads then reuse
        // memory instead of growing the pool with fresh buffers); every element is written below
        let mut v: Vec<T> =
            crate::cpu::buffer::alloc_for_overwrite("load", &Shape::new(e.shape.clone()))?;
        let mut filled = 0usize;
        let mut left = e.end - e.start;
        while left > 0 {
            let take = left.min(scratch.len());
            let buf = &mut scratch[..take];
            src.read_exact(buf).map_err(|err| match err.kind() {
                std::io::ErrorKind::UnexpectedEof => bad(format!(
                    "the file ended while reading tensor {:?} (data bytes {}..{}); was it truncated while being read?",
                    e.name, e.start, e.end
                )),
                _ => Error::Io { op: "load", msg: format!("reading tensor {:?}: {err}", e.name) },
            })?;
            if T::DTYPE == DType::Bool {
                // Kernels treat bool bytes as 0/1 (`a | b` is logical or); another byte value
                // would make masks misbehave silently.
                if let Some(i) = buf.iter().position(|&b| b > 1) {
                    let at = e.start + (e.end - e.start - left) + i;
                    return Err(bad(format!(
                        "tensor {:?}: BOOL data byte {at} is {}; BOOL values must be 0 or 1",
                        e.name, buf[i]
                    )));
                }
            }
            for (dst, bytes) in v[filled..].iter_mut().zip(buf.chunks_exact(T::WIDTH)) {
                *dst = T::get(bytes);
            }
            filled += take / T::WIDTH;
            left -= take;
        }
        Tensor::from_vec(v, Shape::new(e.shape.clone()), Device::Cpu)
    }
    match e.dtype {
        DType::F32 => typed::<f32>(e, src, scratch),
        DType::F64 => typed::<f64>(e, src, scratch),
        DType::I64 => typed::<i64>(e, src, scratch),
        DType::Bool => typed::<u8>(e, src, scratch),
        DType::F16 => typed::<half::f16>(e, src, scratch),
        DType::BF16 => typed::<half::bf16>(e, src, scratch),
        DType::I32 => typed::<i32>(e, src, scratch),
        DType::I16 => typed::<i16>(e, src, scratch),
        DType::I8 => typed::<i8>(e, src, scratch),
        DType::U8 => typed::<crate::UInt8>(e, src, scratch),
    }
}

/// Parses a safetensors file held in memory. Nothing is allocated for tensors until the whole
/// header has been checked against `bytes.len()`.
///
/// ```
/// use backprop::{io, Error};
/// // a header length that points far past the end of a 16-byte file
/// let mut bytes = (1u64 << 40).to_le_bytes().to_vec();
/// bytes.extend_from_slice(b"{}      ");
/// let err = io::load_from_bytes(&bytes).unwrap_err();
/// assert!(matches!(err, Error::Checkpoint(_)));
/// assert!(err.to_string().contains("header length 1099511627776"));
/// ```
pub fn load_from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
    let n = header_len(bytes, bytes.len() as u64)?;
    let header_bytes = bytes
        .get(LEN_PREFIX..LEN_PREFIX + n)
        .ok_or_else(|| bad("header slice out of range".into()))?;
    let header = parse_header(header_bytes, bytes.len() - LEN_PREFIX - n)?;

    // The crate's own reading of the same bytes: its checks run too, and its byte views are
    // what we decode from.
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_error("load", e))?;
    let data_base = bytes.as_ptr() as usize + LEN_PREFIX + n;
    let theirs = st.iter().map(|(k, v)| {
        // Where the crate's view really starts; a disagreement with our offsets is refused below.
        let start = (v.data().as_ptr() as usize).wrapping_sub(data_base);
        (
            k.to_string(),
            (
                v.dtype(),
                v.shape().to_vec(),
                (start, start + v.data().len()),
            ),
        )
    });
    cross_check(&header.entries, &theirs.collect())?;

    let mut scratch = vec![0u8; CHUNK];
    let mut tensors = Vec::with_capacity(header.entries.len());
    for e in &header.entries {
        let view = st.tensor(&e.name).map_err(|err| st_error("load", err))?;
        let mut src: &[u8] = view.data();
        tensors.push((e.name.clone(), read_tensor(e, &mut src, &mut scratch)?));
    }
    Ok(Checkpoint {
        tensors,
        metadata: header.metadata,
    })
}

/// Reads a safetensors file. The header is read and validated against the file's length first;
/// then each tensor is decoded straight from the file into its own buffer, so loading needs the
/// tensors' memory and a small scratch buffer, not a second copy of the file.
///
/// ```
/// use backprop::{io, Error};
/// let path = std::env::temp_dir().join(format!("backprop-doc-load-{}.safetensors", std::process::id()));
/// std::fs::write(&path, b"\x05\x00\x00")?; // 3 bytes: too short to be a checkpoint
/// let err = io::load(&path).unwrap_err();
/// assert!(matches!(err, Error::Checkpoint(_)), "{err}");
/// std::fs::remove_file(&path)?;
/// assert!(matches!(io::load(&path), Err(Error::Io { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| io_error("load", "open", path, e))?;
    let stat = file
        .metadata()
        .map_err(|e| io_error("load", "stat", path, e))?;
    if !stat.is_file() {
        return Err(Error::Io {
            op: "load",
            msg: format!("'{}' is not a regular file", path.display()),
        });
    }
    let file_len = stat.len();
    let mut r = std::io::BufReader::with_capacity(CHUNK, file);
    let read_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(format!(
            "'{}' ended early while reading its header (was it truncated while being read?)",
            path.display()
        )),
        _ => io_error("load", "read", path, e),
    };

    let mut prefix = [0u8; LEN_PREFIX];
    if file_len >= LEN_PREFIX as u64 {
        r.read_exact(&mut prefix).map_err(read_err)?;
    }
    let n = header_len(&prefix, file_len).map_err(|e| with_path(e, path))?;
    let mut header_bytes = vec![0u8; n]; // n was checked against the file length above
    r.read_exact(&mut header_bytes).map_err(read_err)?;
    let data_len = usize::try_from(file_len - LEN_PREFIX as u64 - n as u64).map_err(|_| {
        bad(format!(
            "'{}' is too large for this platform",
            path.display()
        ))
    })?;
    let header = parse_header(&header_bytes, data_len).map_err(|e| with_path(e, path))?;

    // The crate parses the same header; `Metadata`'s own validation checks offsets and sizes.
    let meta: Metadata = serde_json::from_slice(&header_bytes)
        .map_err(|e| bad(format!("safetensors: invalid header: {e}")))?;
    if meta.data_len() != data_len {
        return Err(bad(format!(
            "header parsers disagree about the data length ({} vs {data_len}); refusing the file",
            meta.data_len()
        )));
    }
    let theirs = meta
        .tensors()
        .into_iter()
        .map(|(k, i)| (k, (i.dtype, i.shape.clone(), i.data_offsets)))
        .collect();
    cross_check(&header.entries, &theirs)?;

    // Entries tile the data section in order, so one sequential pass reads them all.
    let mut scratch = vec![0u8; CHUNK];
    let mut tensors = Vec::with_capacity(header.entries.len());
    for e in &header.entries {
        tensors.push((
            e.name.clone(),
            read_tensor(e, &mut r, &mut scratch).map_err(|err| with_path(err, path))?,
        ));
    }
    // The file may have grown since we measured it; what we validated is no longer the whole file.
    let mut extra = [0u8; 1];
    if r.read(&mut extra)
        .map_err(|e| io_error("load", "read", path, e))?
        != 0
    {
        return Err(bad(format!(
            "'{}' grew while being read; refusing a file that changed under us",
            path.display()
        )));
    }
    Ok(Checkpoint {
        tensors,
        metadata: header.metadata,
    })
}

/// Prefixes a checkpoint error with the file it came from.
fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Checkpoint(m) => Error::Checkpoint(format!("'{}': {m}", path.display())),
        other => other,
    }
}

// ====================================================================== tests

#[cfg(test)]
mod tests {
    use super::*;

    fn t_f32(v: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape.to_vec(), Device::Cpu).unwrap()
    }

    /// A file from a raw header string and data bytes, with the correct length prefix.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn err(bytes: &[u8]) -> String {
        match load_from_bytes(bytes) {
            Ok(c) => panic!("expected an error, loaded {:?}", c.names()),
            Err(e @ Error::Checkpoint(_)) => e.to_string(),
            Err(e) => panic!("expected Error::Checkpoint, got {e:?}"),
        }
    }

    fn expect_err(bytes: &[u8], needles: &[&str]) {
        let msg = err(bytes);
        for n in needles {
            assert!(msg.contains(n), "error {msg:?} should mention {n:?}");
        }
    }

    const ONE_F32: &str = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;

    #[test]
    fn round_trip_all_dtypes_bytes_exact() {
        let f = t_f32(
            vec![1.5, -0.0, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE, 3.25],
            &[2, 3],
        );
        let d = Tensor::from_vec(vec![std::f64::consts::PI, -1e300], vec![2], Device::Cpu).unwrap();
        let i =
            Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], vec![2, 1, 2], Device::Cpu).unwrap();
        let b = Tensor::from_vec(vec![1u8, 0, 1], vec![3], Device::Cpu).unwrap();
        let s = Tensor::from_vec(vec![42i64], Vec::<usize>::new(), Device::Cpu).unwrap();
        let e = Tensor::from_vec(Vec::<f32>::new(), vec![3, 0, 2], Device::Cpu).unwrap();
        let all = vec![
            ("f".to_string(), f.clone()),
            ("d".into(), d.clone()),
            ("i".into(), i.clone()),
            ("b".into(), b.clone()),
            ("s".into(), s.clone()),
            ("e".into(), e.clone()),
        ];
        let meta: BTreeMap<String, String> = (0..20)
            .map(|i| (format!("k{i}"), format!("v{i}")))
            .chain([("ünï".to_string(), "{\"json\": 1}".to_string())])
            .collect();
        let bytes = save_to_bytes(&all, Some(&meta)).unwrap();
        let back = load_from_bytes(&bytes).unwrap();
        assert_eq!(back.metadata, meta);
        assert_eq!(back.tensors.len(), 6);
        // bit patterns, so NaN and -0.0 count
        let bits32 = |t: &Tensor| {
            t.to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        let bits64 = |t: &Tensor| {
            t.to_vec::<f64>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        let g = |n: &str| back.get(n).unwrap().clone();
        assert_eq!(bits32(&g("f")), bits32(&f));
        assert_eq!(g("f").dims(), &[2, 3]);
        assert_eq!(bits64(&g("d")), bits64(&d));
        assert_eq!(g("i").to_vec::<i64>().unwrap(), i.to_vec::<i64>().unwrap());
        assert_eq!(g("i").dims(), &[2, 1, 2]);
        assert_eq!(
            (g("b").dtype(), g("b").to_vec::<u8>().unwrap()),
            (DType::Bool, vec![1, 0, 1])
        );
        assert_eq!((g("s").rank(), g("s").item().unwrap()), (0, 42.0));
        assert_eq!(g("e").dims(), &[3, 0, 2]);
        // saving what was loaded reproduces the file byte for byte
        let again = save_to_bytes(&back.tensors, Some(&back.metadata)).unwrap();
        assert_eq!(again, bytes);
    }

    #[test]
    fn file_round_trip_and_layout_is_standard() {
        let dir = std::env::temp_dir().join(format!("backprop-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ckpt.safetensors");
        let x = t_f32((0..12).map(|v| v as f32).collect(), &[3, 4]);
        let view = x
            .transpose(0usize, 1)
            .unwrap()
            .narrow(0usize, 1, 2)
            .unwrap(); // strided, offset view
        save(&[("v".to_string(), view.clone())], None, &path).unwrap();
        let raw = std::fs::read(&path).unwrap();
        // independent reading: prefix, JSON, little-endian data
        let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
        let h: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
        assert_eq!(h["v"]["dtype"], "F32");
        assert_eq!(h["v"]["shape"], serde_json::json!([2, 3]));
        assert_eq!(h["v"]["data_offsets"], serde_json::json!([0, 24]));
        let data: Vec<f32> = raw[8 + n..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(data, vec![1.0, 5.0, 9.0, 2.0, 6.0, 10.0]);
        let back = load(&path).unwrap();
        assert_eq!(
            back.get("v").unwrap().to_vec::<f32>().unwrap(),
            view.to_vec::<f32>().unwrap()
        );
        // a second save replaces the file; no temporaries are left behind
        save(&[("w".to_string(), x)], None, &path).unwrap();
        assert_eq!(load(&path).unwrap().names(), vec!["w"]);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broadcast_views_are_written_materialised() {
        let x = t_f32(vec![1.0, 2.0], &[2])
            .broadcast_to(&Shape::new(vec![3, 2]))
            .unwrap();
        let back = load_from_bytes(&save_to_bytes(&[("x".into(), x)], None).unwrap()).unwrap();
        assert_eq!(
            back.get("x").unwrap().to_vec::<f32>().unwrap(),
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
        );
    }

    #[test]
    fn save_rejects_duplicate_and_reserved_names() {
        let a = t_f32(vec![1.0], &[1]);
        let e =
            save_to_bytes(&[("a".into(), a.clone()), ("a".into(), a.clone())], None).unwrap_err();
        assert!(e.to_string().contains("two tensors are named \"a\""), "{e}");
        let e = save_to_bytes(&[(METADATA_KEY.into(), a)], None).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
    }

    #[test]
    fn io_errors_name_the_path() {
        let missing = std::env::temp_dir()
            .join("backprop-no-such-dir-xyz")
            .join("a.safetensors");
        match load(&missing) {
            Err(Error::Io { op: "load", msg }) => {
                assert!(msg.contains("backprop-no-such-dir-xyz"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        match save(&[], None, &missing) {
            Err(Error::Io { op: "save", msg }) => {
                assert!(msg.contains("backprop-no-such-dir-xyz"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        // a directory is not a checkpoint
        assert!(matches!(load(std::env::temp_dir()), Err(Error::Io { .. })));
    }

    #[test]
    fn accepts_any_key_order_and_no_metadata() {
        // The format does not tie JSON key order to byte order; "b" is listed first but stored second.
        let h = r#"{"b":{"dtype":"I64","shape":[],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut data = 2.5f32.to_le_bytes().to_vec();
        data.extend_from_slice(&7i64.to_le_bytes());
        let c = load_from_bytes(&file(h, &data)).unwrap();
        assert_eq!(c.names(), vec!["a", "b"]);
        assert_eq!(c.get("b").unwrap().item().unwrap(), 7.0);
        assert!(c.metadata.is_empty());
        // empty file body: no tensors at all
        assert!(load_from_bytes(&file("{}", &[]))
            .unwrap()
            .tensors
            .is_empty());
        // padding spaces after the JSON are allowed (the writer pads to 8 bytes)
        assert_eq!(
            load_from_bytes(&file(&format!("{ONE_F32}     "), &[0; 8]))
                .unwrap()
                .names(),
            vec!["a"]
        );
        // "__metadata__": null reads as no metadata, as in the safetensors crate
        assert!(load_from_bytes(&file(r#"{"__metadata__":null}"#, &[]))
            .unwrap()
            .metadata
            .is_empty());
    }

    #[test]
    fn rejects_short_files() {
        for len in 0..8 {
            expect_err(
                &vec![0u8; len],
                &[
                    &format!("file is {len} bytes"),
                    "shorter than the 8-byte header length",
                ],
            );
        }
    }

    #[test]
    fn rejects_truncated_header() {
        let full = file(ONE_F32, &[0; 8]);
        // cut inside the header: the declared length now runs past the end
        let n = ONE_F32.len();
        expect_err(
            &full[..20],
            &[
                &format!("header length {n} runs past the end of the file"),
                "only 12 bytes follow",
                "file is 20 bytes",
            ],
        );
        // cut exactly after the header: the tensor's range now runs past the end of the data
        expect_err(
            &full[..8 + n],
            &[
                "tensor \"a\"",
                "data_offsets [0, 8] run past the end of the data section, which holds 0 bytes",
            ],
        );
    }

    #[test]
    fn rejects_header_length_past_end_or_absurd() {
        let mut f = file(ONE_F32, &[0; 8]);
        let past = (f.len() as u64 - 8 + 1).to_le_bytes();
        f[..8].copy_from_slice(&past);
        expect_err(
            &f,
            &[&format!(
                "header length {} runs past the end of the file",
                ONE_F32.len() + 8 + 1
            )],
        );
        f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        expect_err(
            &f,
            &["header length 18446744073709551615 is larger than the 100000000-byte limit"],
        );
        f[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        expect_err(&f, &["larger than the 100000000-byte limit"]);
    }

    #[test]
    fn rejects_bad_utf8_and_bad_json() {
        expect_err(
            &file("{\"a\u{e9}\":1}", &[])
                .iter()
                .map(|&b| if b == 0xa9 { 0xff } else { b })
                .collect::<Vec<_>>(),
            &["header is not valid UTF-8"],
        );
        expect_err(
            &file("{\"a\": ", &[]),
            &["header is not a valid safetensors JSON header", "EOF"],
        );
        expect_err(
            &file("[1, 2]", &[]),
            &[
                "not a valid safetensors JSON header",
                "expected a JSON object",
            ],
        );
        expect_err(&file("", &[]), &["not a valid safetensors JSON header"]);
        expect_err(
            &file(&format!("{ONE_F32} x"), &[0; 8]),
            &["trailing characters"],
        );
        expect_err(
            &file(r#"{"a":{"dtype":"F32","shape":[2]}}"#, &[0; 8]),
            &["tensor \"a\"", "missing field `data_offsets`"],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}"#,
                &[0; 8],
            ),
            &["tensor \"a\"", "unknown field `extra`"],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &["tensor \"a\"", "invalid value"],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}"#,
                &[0; 8],
            ),
            &["tensor \"a\""],
        );
        expect_err(
            &file(r#"{"__metadata__":{"k":1}}"#, &[]),
            &["__metadata__[\"k\"] must be a string"],
        );
        // deep nesting stops at serde_json's recursion limit instead of overflowing the stack
        let deep = format!(
            "{{\"__metadata__\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        expect_err(&file(&deep, &[]), &["not a valid safetensors JSON header"]);
    }

    #[test]
    fn rejects_duplicate_keys() {
        let h = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        expect_err(&file(h, &[0; 8]), &["duplicate key \"a\" in the header"]);
        // the same key spelled with an escape is still the same key
        let h = r#"{"ab":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a\u0062":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        expect_err(&file(h, &[0; 8]), &["duplicate key \"ab\""]);
        expect_err(
            &file(r#"{"__metadata__":{},"__metadata__":{}}"#, &[]),
            &["duplicate key \"__metadata__\""],
        );
        expect_err(
            &file(r#"{"__metadata__":{"k":"1","k":"2"}}"#, &[]),
            &["duplicate key \"k\" in __metadata__"],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &["tensor \"a\"", "duplicate field `dtype`"],
        );
    }

    #[test]
    fn rejects_unknown_and_unsupported_dtypes() {
        expect_err(
            &file(
                r#"{"a":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &[
                "tensor \"a\"",
                "dtype U16 is valid safetensors but not supported",
            ],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"Q7","shape":[8],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &["tensor \"a\"", "unknown dtype \"Q7\""],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &["unknown dtype \"f32\""],
        );
    }

    #[test]
    fn rejects_size_mismatch() {
        expect_err(
            &file(
                r#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &[
                "tensor \"a\"",
                "shape [2] of dtype F64 needs 2 × 8 = 16 bytes",
                "span 8 bytes",
            ],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,8]}}"#,
                &[0; 8],
            ),
            &["needs 1 × 4 = 4 bytes"],
        );
    }

    #[test]
    fn rejects_out_of_bounds_ranges() {
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 8],
            ),
            &[
                "tensor \"a\"",
                "data_offsets [0, 16] run past the end of the data section, which holds 8 bytes",
            ],
        );
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,18446744073709551615]}}"#,
                &[0; 8],
            ),
            &["run past the end"],
        );
    }

    #[test]
    fn rejects_end_before_start() {
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#,
                &[0; 8],
            ),
            &["tensor \"a\"", "data_offsets [8, 4] end before they start"],
        );
    }

    #[test]
    fn rejects_overlap_gap_and_reordering() {
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        expect_err(
            &file(h, &[0; 12]),
            &["tensor \"b\": data_offsets [4, 12] overlap the bytes of tensor \"a\" [0, 8]"],
        );
        // two tensors claiming the same bytes
        let h = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        expect_err(&file(h, &[0; 8]), &["overlap"]);
        let h = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
        expect_err(
            &file(h, &[0; 12]),
            &[
                "data section bytes 4..8",
                "belong to no tensor: a gap before tensor \"b\"",
            ],
        );
        // data not starting at 0 is a gap too
        expect_err(
            &file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &[0; 8],
            ),
            &["bytes 0..4", "gap before tensor \"a\""],
        );
        // a later tensor whose range starts inside an earlier one (ranges going backwards)
        let h = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
        expect_err(&file(h, &[0; 12]), &["overlap"]);
    }

    #[test]
    fn rejects_trailing_bytes() {
        expect_err(
            &file(ONE_F32, &[0; 9]),
            &[
                "1 trailing bytes after the last tensor",
                "tensors end at data byte 8",
            ],
        );
        expect_err(&file("{}", &[1, 2, 3]), &["3 trailing bytes"]);
    }

    #[test]
    fn rejects_overflowing_element_counts() {
        let h = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
        expect_err(
            &file(h, &[0; 8]),
            &[
                "tensor \"a\"",
                "element count of shape [4294967296, 4294967296]",
                "overflows",
            ],
        );
        // fits in usize as elements but not as bytes
        let h = r#"{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}"#;
        expect_err(&file(h, &[0; 8]), &["overflows"]);
        // an empty tensor whose other dims still overflow
        let h = r#"{"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}"#;
        expect_err(&file(h, &[]), &["overflows"]);
        // a dimension past u64 is a JSON error naming the tensor
        let h = r#"{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,8]}}"#;
        expect_err(&file(h, &[0; 8]), &["tensor \"a\""]);
    }

    #[test]
    fn rejects_bool_bytes_other_than_0_and_1() {
        expect_err(
            &file(
                r#"{"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}"#,
                &[1, 0, 2],
            ),
            &["tensor \"m\"", "BOOL data byte 2 is 2"],
        );
    }

    #[test]
    fn file_errors_name_the_file_and_match_bytes() {
        let dir = std::env::temp_dir().join(format!("backprop-io-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            vec![1, 2, 3],
            file(ONE_F32, &[0; 9]),
            file(ONE_F32, &[0; 7]),
            file(
                r#"{"a":{"dtype":"Q","shape":[],"data_offsets":[0,0]}}"#,
                &[],
            ),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let p = dir.join(format!("bad{i}.safetensors"));
            std::fs::write(&p, bytes).unwrap();
            let from_file = load(&p).unwrap_err().to_string();
            let from_bytes = load_from_bytes(bytes).unwrap_err().to_string();
            assert!(
                from_file.contains(&format!("bad{i}.safetensors")),
                "{from_file}"
            );
            // same diagnosis either way (the file path only adds the name)
            let tail = from_bytes.trim_start_matches("checkpoint: ");
            assert!(from_file.ends_with(tail), "{from_file} vs {from_bytes}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A small deterministic PRNG, so the fuzz below needs no extra crate and replays exactly.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn fuzzed_files_never_panic_and_both_loaders_agree() {
        let x = t_f32((0..6).map(|v| v as f32).collect(), &[2, 3]);
        let i = Tensor::from_vec(vec![3i64, -4], vec![2], Device::Cpu).unwrap();
        let b = Tensor::from_vec(vec![1u8, 0], vec![2], Device::Cpu).unwrap();
        let e = Tensor::from_vec(Vec::<f64>::new(), vec![0, 5], Device::Cpu).unwrap();
        let meta = BTreeMap::from([("epoch".to_string(), "3".to_string())]);
        let base = save_to_bytes(
            &[
                ("w".into(), x),
                ("step".into(), i),
                ("mask".into(), b),
                ("empty".into(), e),
            ],
            Some(&meta),
        )
        .unwrap();
        let n = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
        let dir = std::env::temp_dir().join(format!("backprop-io-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut ok, mut rejected) = (0, 0);
        for case in 0..3000 {
            let mut f = base.clone();
            match case % 6 {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(f.len());
                        f[at] ^= 1 << rng.below(8);
                    }
                }
                1 => f.truncate(rng.below(f.len())),
                2 => {
                    let v = [
                        0,
                        n as u64 - 1,
                        n as u64 + 1,
                        f.len() as u64,
                        u64::MAX,
                        1 << 63,
                        rng.next(),
                    ][rng.below(7)];
                    f[..8].copy_from_slice(&v.to_le_bytes());
                }
                3 => {
                    // rewrite one number in the header and fix the length prefix
                    let h = String::from_utf8(f[8..8 + n].to_vec()).unwrap();
                    let digits: Vec<usize> = h
                        .char_indices()
                        .filter(|(_, c)| c.is_ascii_digit())
                        .map(|(i, _)| i)
                        .collect();
                    let at = digits[rng.below(digits.len())];
                    let repl = [
                        "0",
                        "9",
                        "18446744073709551615",
                        "-1",
                        "1e3",
                        "4294967296",
                        "99999999999999999999",
                    ][rng.below(7)];
                    let h2 = format!("{}{}{}", &h[..at], repl, &h[at + 1..]);
                    f = file(&h2, &base[8 + n..]);
                }
                4 => {
                    // duplicate or drop a byte range of the header (duplicated keys, broken JSON)
                    let h = f[8..8 + n].to_vec();
                    let (a, len) = (rng.below(h.len()), rng.below(40));
                    let end = (a + len).min(h.len());
                    let mut h2 = h[..end].to_vec();
                    if rng.below(2) == 0 {
                        h2.extend_from_slice(&h[a..end]);
                    }
                    h2.extend_from_slice(&h[end..]);
                    let mut g = (h2.len() as u64).to_le_bytes().to_vec();
                    g.extend_from_slice(&h2);
                    g.extend_from_slice(&base[8 + n..]);
                    f = g;
                }
                _ => {
                    let len = rng.below(64);
                    f = (0..len).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 && len >= 8 {
                        f[..8].copy_from_slice(&((len - 8) as u64).to_le_bytes());
                    }
                }
            }
            let from_bytes = load_from_bytes(&f);
            let p = dir.join("f.safetensors");
            // a fresh file each time: rewriting one in place makes ext4 flush it on every close
            let _ = std::fs::remove_file(&p);
            std::fs::write(&p, &f).unwrap();
            let from_file = load(&p);
            match (&from_bytes, &from_file) {
                (Ok(a), Ok(b)) => {
                    ok += 1;
                    assert_eq!(a.names(), b.names(), "case {case}");
                    for ((_, ta), (_, tb)) in a.tensors.iter().zip(&b.tensors) {
                        assert_eq!(
                            ta.to_f64_vec()
                                .unwrap()
                                .iter()
                                .map(|v| v.to_bits())
                                .collect::<Vec<_>>(),
                            tb.to_f64_vec()
                                .unwrap()
                                .iter()
                                .map(|v| v.to_bits())
                                .collect::<Vec<_>>()
                        );
                    }
                }
                (Err(Error::Checkpoint(_)), Err(Error::Checkpoint(_))) => rejected += 1,
                _ => panic!("case {case}: loaders disagree: {from_bytes:?} vs {from_file:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // both outcomes must occur, or the mutations are not exercising anything
        eprintln!("fuzz: {ok} loaded, {rejected} rejected");
        assert!(ok > 50 && rejected > 1000, "ok={ok} rejected={rejected}");
    }
}
