//! The broker's request decoding, exactly as a connection runs it:
//! `broker::decode_request` (the header, then the body decoder of the
//! frame's API and version, for every API and version of
//! `protocol::api::SUPPORTED_APIS`) over one frame body.
//!
//! The broker bounds what a decoder may allocate from sizes read off the
//! wire with its global allocator (`protocol::alloc_guard`): the target runs
//! under the same one, so a claimed array of two billion elements costs
//! address space, not memory, here as in the broker.
//!
//! Checks: no panic, and a request that decodes re-encodes without a panic
//! (the handlers answer with the same codec and echo request fields).
//! Whether `compute_size` agrees with `encode` is not checked: for decoded
//! requests it does not always (fuzz/findings/request-delete-records-v2-*,
//! in kafka-protocol 0.18), and the broker never re-encodes a request.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::Encodable;
use libfuzzer_sys::fuzz_target;
use broker::broker::{decode_request, DecodedRequest, RequestBody};

#[global_allocator]
static ALLOCATOR: wire::alloc_guard::ReservingAllocator =
    wire::alloc_guard::ReservingAllocator;

fn reencode<T: Encodable>(request: &T, version: i16) {
    // Both must return, not panic.
    if let Ok(size) = request.compute_size(version) {
        let mut buf = BytesMut::with_capacity(size.min(1 << 20));
        let _ = request.encode(&mut buf, version);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(DecodedRequest::Request { version, body, .. }) =
        decode_request(Bytes::copy_from_slice(data))
    else {
        return;
    };
    use RequestBody as B;
    match &body {
        B::Produce(r) => reencode(r, version),
        B::Fetch(r) => reencode(r, version),
        B::ListOffsets(r) => reencode(r, version),
        B::DeleteRecords(r) => reencode(r, version),
        B::OffsetForLeaderEpoch(r) => reencode(r, version),
        B::Metadata(r) => reencode(r, version),
        B::ApiVersions => {}
        B::DescribeCluster(r) => reencode(r, version),
        B::InitProducerId(r) => reencode(r, version),
        B::CreateTopics(r) => reencode(r, version),
        B::DeleteTopics(r) => reencode(r, version),
        B::CreatePartitions(r) => reencode(r, version),
        B::DescribeConfigs(r) => reencode(r, version),
        B::IncrementalAlterConfigs(r) => reencode(r, version),
        B::AlterConfigs(r) => reencode(r, version),
        B::FindCoordinator(r) => reencode(r, version),
        B::JoinGroup(r) => reencode(r, version),
        B::SyncGroup(r) => reencode(r, version),
        B::Heartbeat(r) => reencode(r, version),
        B::LeaveGroup(r) => reencode(r, version),
        B::DescribeGroups(r) => reencode(r, version),
        B::ListGroups(r) => reencode(r, version),
        B::DeleteGroups(r) => reencode(r, version),
        B::OffsetCommit(r) => reencode(r, version),
        B::OffsetFetch(r) => reencode(r, version),
        B::OffsetDelete(r) => reencode(r, version),
        B::SaslHandshake(r) => reencode(r, version),
        B::SaslAuthenticate(r) => reencode(r, version),
        B::DescribeUserScramCredentials(r) => reencode(r, version),
        B::AlterUserScramCredentials(r) => reencode(r, version),
        B::CreateAcls(r) => reencode(r, version),
        B::DescribeAcls(r) => reencode(r, version),
        B::DeleteAcls(r) => reencode(r, version),
    }
});
