//! The records Tidemark writes to `__consumer_offsets`: a committed offset
//! keyed by (group, topic, partition), and a group's metadata keyed by group.
//! A null value (tombstone) deletes the key. Tidemark's own versioned binary
//! format; decoding never trusts the bytes (they come from disk).
use super::membership::{StoredGroup, StoredMember};
use bytes::{BufMut, Bytes, BytesMut};

const KEY_OFFSET: u8 = 0;
const KEY_GROUP: u8 = 1;
const FORMAT_VERSION: u8 = 0;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<StoredGroup>,
    },
}

fn put_str(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_i32(-1),
        Some(s) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(KEY_OFFSET);
    out.put_u8(FORMAT_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(KEY_GROUP);
    out.put_u8(FORMAT_VERSION);
    put_str(&mut out, group);
    out.freeze()
}

pub fn offset_value(c: &CommittedOffset) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(FORMAT_VERSION);
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    put_opt_str(&mut out, c.metadata.as_deref());
    out.put_i64(c.commit_timestamp_ms);
    out.freeze()
}

pub fn group_value(g: &StoredGroup) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(FORMAT_VERSION);
    put_str(&mut out, &g.protocol_type);
    put_str(&mut out, &g.protocol_name);
    out.put_i32(g.generation_id);
    put_str(&mut out, &g.leader);
    out.put_u32(g.members.len() as u32);
    for m in &g.members {
        put_str(&mut out, &m.member_id);
        put_opt_str(&mut out, m.group_instance_id.as_deref());
        put_str(&mut out, &m.client_id);
        put_str(&mut out, &m.client_host);
        out.put_i32(m.session_timeout_ms);
        out.put_i32(m.rebalance_timeout_ms);
        put_bytes(&mut out, &m.metadata);
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

/// A bounds-checked reader over bytes from disk.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let len = self.u16()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn opt_str(&mut self) -> Option<Option<String>> {
        let len = self.i32()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(
            String::from_utf8(self.take(len as usize)?.to_vec()).ok()?,
        ))
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.u32()? as usize;
        Some(Bytes::copy_from_slice(self.take(len)?))
    }
}

/// Decodes one record; `None` if it is not one of ours or is damaged.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetsRecord> {
    let mut k = Reader(key);
    let kind = k.u8()?;
    if k.u8()? != FORMAT_VERSION {
        return None;
    }
    let group = k.str()?;
    match kind {
        KEY_OFFSET => {
            let topic = k.str()?;
            let partition = k.i32()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_offset(v)?),
            };
            Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        KEY_GROUP => {
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(v)?),
            };
            Some(OffsetsRecord::Group { group, value })
        }
        _ => None,
    }
}

fn decode_offset(v: &[u8]) -> Option<CommittedOffset> {
    let mut r = Reader(v);
    if r.u8()? != FORMAT_VERSION {
        return None;
    }
    Some(CommittedOffset {
        offset: r.i64()?,
        leader_epoch: r.i32()?,
        metadata: r.opt_str()?,
        commit_timestamp_ms: r.i64()?,
    })
}

fn decode_group(v: &[u8]) -> Option<StoredGroup> {
    let mut r = Reader(v);
    if r.u8()? != FORMAT_VERSION {
        return None;
    }
    let protocol_type = r.str()?;
    let protocol_name = r.str()?;
    let generation_id = r.i32()?;
    let leader = r.str()?;
    let count = r.u32()? as usize;
    // Each member takes at least 28 bytes: refuse counts the bytes cannot hold.
    if count > v.len() / 28 {
        return None;
    }
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        members.push(StoredMember {
            member_id: r.str()?,
            group_instance_id: r.opt_str()?,
            client_id: r.str()?,
            client_host: r.str()?,
            session_timeout_ms: r.i32()?,
            rebalance_timeout_ms: r.i32()?,
            metadata: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(StoredGroup {
        protocol_type,
        protocol_name,
        generation_id,
        leader,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp_ms: 7,
        };
        let r = decode(&offset_key("g", "t", 5), Some(&offset_value(&c))).unwrap();
        assert_eq!(
            r,
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(c)
            }
        );
        let tomb = decode(&offset_key("g", "t", 5), None).unwrap();
        assert!(matches!(tomb, OffsetsRecord::Offset { value: None, .. }));
    }

    #[test]
    fn groups_round_trip() {
        let g = StoredGroup {
            protocol_type: "consumer".into(),
            protocol_name: "range".into(),
            generation_id: 4,
            leader: "a".into(),
            members: vec![StoredMember {
                member_id: "a".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                session_timeout_ms: 10,
                rebalance_timeout_ms: 20,
                metadata: Bytes::from_static(b"meta"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        let r = decode(&group_key("g"), Some(&group_value(&g))).unwrap();
        assert_eq!(
            r,
            OffsetsRecord::Group {
                group: "g".into(),
                value: Some(g)
            }
        );
    }

    #[test]
    fn damaged_records_are_ignored() {
        let v = offset_value(&CommittedOffset {
            offset: 1,
            leader_epoch: 0,
            metadata: None,
            commit_timestamp_ms: 0,
        });
        for cut in 0..v.len() {
            assert!(decode(&offset_key("g", "t", 0), Some(&v[..cut])).is_none());
        }
        assert!(decode(b"\x07\x00", None).is_none());
        let mut huge = BytesMut::new();
        huge.put_u8(0);
        put_str(&mut huge, "");
        put_str(&mut huge, "");
        huge.put_i32(0);
        put_str(&mut huge, "");
        huge.put_u32(u32::MAX);
        assert!(decode(&group_key("g"), Some(&huge)).is_none());
    }
}
