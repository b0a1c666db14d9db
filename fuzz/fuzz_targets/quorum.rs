//! The quorum port's protocol as a quorum node reads it (`quorum::node`):
//! `quorum::protocol::read_frame` over an arbitrary byte stream, each body
//! decoded with `serde_json::from_slice::<RequestFrame>`, and every
//! `Write(proposal)` applied by the state machine (`quorum::state::apply`)
//! to a small view (three brokers, two topics), in input order.
//!
//! Input: `[mode][bytes...]`. `mode` even: the bytes are a stream of
//! length-prefixed frames; odd: the bytes are one frame's body (JSON), so
//! that mutations need not keep a length prefix right.
//!
//! Checks: no panic; frame bodies are within `FRAME_BYTES_MAX`; a rejected
//! command changes nothing; an applied one that changed the view bumps the
//! revision by one, and the result names the new revision.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use quorum::protocol::{read_frame, Request, RequestFrame, FRAME_BYTES_MAX};
use quorum::state::apply;
use quorum::{BrokerInfo, ClusterView, Command, Proposal};

#[global_allocator]
static ALLOCATOR: wire::alloc_guard::ReservingAllocator =
    wire::alloc_guard::ReservingAllocator;

/// Proposals applied per input at most (each may create thousands of
/// partitions).
const APPLY_MAX: usize = 32;

fn small_view() -> &'static ClusterView {
    static VIEW: OnceLock<ClusterView> = OnceLock::new();
    VIEW.get_or_init(|| {
        let mut view = ClusterView::default();
        let mut run = |command| {
            apply(&mut view, &Proposal::new(command)).expect("the starting view builds");
        };
        run(Command::InitCluster {
            cluster_id: "fuzz".into(),
        });
        for id in 1..=3 {
            run(Command::RegisterBroker {
                info: BrokerInfo {
                    broker_id: model::BrokerId(id),
                    host: "127.0.0.1".into(),
                    port: 9090 + id as u16,
                    rack: None,
                    incarnation: None,
                    listeners: Vec::new(),
                },
            });
        }
        for (name, partitions, rf) in [("t", 3, 3), ("c", 1, 2)] {
            run(Command::CreateTopic {
                name: name.into(),
                partitions,
                replication_factor: rf,
                configs: BTreeMap::new(),
                topic_id: None,
            });
        }
        view
    })
}

fn handle(body: &[u8], view: &mut ClusterView, applied: &mut usize) {
    assert!(body.len() <= FRAME_BYTES_MAX);
    let Ok(frame) = serde_json::from_slice::<RequestFrame>(body) else {
        return;
    };
    let Request::Write(proposal) = frame.request else {
        return;
    };
    if *applied >= APPLY_MAX {
        return;
    }
    *applied += 1;
    let before = view.clone();
    match apply(view, &proposal) {
        Err(_) => assert_eq!(*view, before, "a rejected command changed the view"),
        Ok(result) => {
            assert_eq!(result.revision, view.revision);
            let changed = {
                let mut unbumped = view.clone();
                unbumped.revision = before.revision;
                unbumped != before
            };
            let bump = if changed { 1 } else { 0 };
            assert_eq!(
                view.revision,
                before.revision + bump,
                "the revision goes up by one exactly when the view changed"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let mut view = small_view().clone();
    let mut applied = 0;
    if mode & 1 == 1 {
        handle(bytes, &mut view, &mut applied);
        return;
    }
    let mut stream = bytes;
    futures::executor::block_on(async {
        while let Ok(Some(body)) = read_frame(&mut stream).await {
            handle(&body, &mut view, &mut applied);
        }
    });
});
