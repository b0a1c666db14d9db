//! One open segment: its O_DIRECT file, the partial last block kept in memory
//! (O_DIRECT writes whole aligned blocks, so the tail block is rewritten with
//! the next append), and its `SegmentMeta`.
use super::index::SegmentMeta;
use super::off_shard::FileWrite;
use super::recovery::segment_path;
use super::StorageError;
use glommio::io::{DmaFile, OpenOptions};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// O_DIRECT block size used for every write position and length.
pub const BLOCK_BYTES: u64 = 4096;

pub fn align_down(v: u64) -> u64 {
    v & !(BLOCK_BYTES - 1)
}

pub fn align_up(v: u64) -> u64 {
    align_down(v + BLOCK_BYTES - 1)
}

pub struct Segment {
    pub meta: SegmentMeta,
    pub file: Rc<DmaFile>,
    pub dir: PathBuf,
    /// The file's size once every planned write is done: `meta.size` plus
    /// the writes in flight.
    pub planned_size: u64,
    /// What the file's length is (or will be once a planned fallocate is
    /// done): blocks up to here are allocated, so writes below it do not
    /// extend the file. Cut back to `meta.size` when the segment is sealed.
    pub allocated_size: u64,
    /// The bytes `[align_down(planned_size), planned_size)`, rewritten with
    /// the next write.
    pub tail_block: Vec<u8>,
    /// Wall-clock creation time, for `segment.ms`.
    pub created_ms: i64,
}

impl Segment {
    pub fn base_offset(&self) -> u64 {
        self.meta.base_offset
    }

    pub fn log_path(&self) -> PathBuf {
        segment_path(&self.dir, self.meta.base_offset, "log")
    }

    /// Creates an empty segment file.
    pub async fn create(dir: &Path, base_offset: u64) -> Result<Segment, StorageError> {
        let path = segment_path(dir, base_offset, "log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await
            .map_err(|e| StorageError::io("cannot create segment", &path, os_error(e)))?;
        Ok(Segment {
            meta: SegmentMeta::empty(base_offset),
            file: Rc::new(file),
            dir: dir.to_path_buf(),
            planned_size: 0,
            allocated_size: 0,
            tail_block: Vec::new(),
            created_ms: super::now_ms(),
        })
    }

    /// Opens a segment that recovery has checked.
    pub async fn open(dir: &Path, meta: SegmentMeta) -> Result<Segment, StorageError> {
        let path = segment_path(dir, meta.base_offset, "log");
        let tail_block = read_tail_block(&path, align_down(meta.size), meta.size)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| StorageError::io("cannot open segment", &path, os_error(e)))?;
        let created_ms = std::fs::metadata(&path)
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or_else(super::now_ms);
        Ok(Segment {
            planned_size: meta.size,
            allocated_size: meta.size,
            meta,
            file: Rc::new(file),
            dir: dir.to_path_buf(),
            tail_block,
            created_ms,
        })
    }

    /// `.index` and `.timeindex` as they stand, to write elsewhere.
    pub fn index_files(&mut self) -> Vec<FileWrite> {
        let base = self.meta.base_offset;
        vec![
            FileWrite {
                path: segment_path(&self.dir, base, "index"),
                bytes: self.meta.index.to_bytes(),
                context: "cannot write index",
            },
            FileWrite {
                path: segment_path(&self.dir, base, "timeindex"),
                bytes: self.meta.final_time_index().to_bytes(),
                context: "cannot write time index",
            },
        ]
    }
}

/// The operating system's error inside glommio's, so that its code (EMFILE:
/// out of descriptors, retried) survives.
fn os_error(e: glommio::GlommioError<()>) -> std::io::Error {
    match e {
        glommio::GlommioError::EnhancedIoError { source, .. } => source,
        other => other.into(),
    }
}

fn read_tail_block(path: &Path, start: u64, end: u64) -> Result<Vec<u8>, StorageError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut tail = vec![0u8; (end - start) as usize];
    if tail.is_empty() {
        return Ok(tail);
    }
    let mut f =
        std::fs::File::open(path).map_err(|e| StorageError::io("cannot open segment", path, e))?;
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_exact(&mut tail))
        .map_err(|e| StorageError::io("cannot read segment tail", path, e))?;
    Ok(tail)
}
