//! Partition choice for produced records, compatible with the Java client:
//! keyed records go to `toPositive(murmur2(key)) % partitions`, unkeyed ones
//! round robin. Pure functions; used by the CLI's producer on the main thread.

/// Kafka's murmur2 (Java `Utils.murmur2`): seed 0x9747b28c, little-endian words.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java uses the int length; keys beyond 2 GiB cannot be produced anyway.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java `Utils.toPositive`: clears the sign bit (not `abs`).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client picks for a key.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    debug_assert!(partition_count > 0);
    to_positive(murmur2(key)) % partition_count.max(1)
}

/// Chooses partitions: explicit, else by key, else round robin.
#[derive(Debug, Default)]
pub struct Partitioner {
    next_round_robin: u32,
}

impl Partitioner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The partition for one record; `partition_count` must be positive.
    pub fn choose(
        &mut self,
        explicit: Option<i32>,
        key: Option<&[u8]>,
        partition_count: i32,
    ) -> i32 {
        if let Some(p) = explicit {
            return p;
        }
        let count = partition_count.max(1);
        match key {
            Some(k) => partition_for_key(k, count),
            None => {
                let p = (self.next_round_robin % count as u32) as i32;
                self.next_round_robin = self.next_round_robin.wrapping_add(1);
                p
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_java_utils_test() {
        // Values from the Java algorithm (Kafka's UtilsTest.testMurmur2).
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert_eq!(murmur2(b""), 275_646_681);
    }

    #[test]
    fn partition_for_key_uses_to_positive() {
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(partition_for_key(b"21", 3), 0);
        assert_eq!(partition_for_key(b"a-little-bit-long-string", 3), 2);
        assert_eq!(partition_for_key(b"128", 3), 2);
    }

    #[test]
    fn round_robin_and_explicit() {
        let mut p = Partitioner::new();
        let got: Vec<i32> = (0..5).map(|_| p.choose(None, None, 3)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1]);
        assert_eq!(p.choose(Some(7), Some(b"21"), 3), 7);
        assert_eq!(p.choose(None, Some(b"21"), 3), 0);
    }
}
