//! The services a shard carries for the layers above it (the replica
//! manager, the group coordinator), looked up by type, and the leadership
//! notifications they exchange.
//!
//! The shard knows the partition logs and how to reach other shards, and
//! nothing of replication or groups: the composition root (`server`) builds
//! each shard's services and hands them to `Shard::new`, and each service's
//! own module adds the accessor (`shard.replication()`, `shard.groups()`).
//! That keeps the import graph one way (shard below replication and group)
//! while a job sent to another shard still finds that shard's services.
//! One per shard, on that shard's thread only.
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::rc::Rc;

/// A shard's services, at most one of each type, fixed once the shard is
/// built.
#[derive(Default)]
pub struct ShardServices {
    entries: Vec<(TypeId, Box<dyn Any>)>,
}

impl ShardServices {
    /// Adds `service`; a service type is installed once.
    pub fn insert<T: 'static>(&mut self, service: T) {
        assert!(
            self.get::<T>().is_none(),
            "{} installed twice on one shard",
            std::any::type_name::<T>()
        );
        self.entries.push((TypeId::of::<T>(), Box::new(service)));
    }

    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.entries
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .and_then(|(_, service)| service.downcast_ref::<T>())
    }
}

/// A change of this broker's leadership of a partition the shard owns, as
/// replication decides it from the cluster view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadershipChange {
    /// This broker leads the partition from now on, at `leader_epoch`; its
    /// role is already set when listeners hear of it.
    Gained {
        topic: String,
        partition: i32,
        leader_epoch: model::LeaderEpoch,
    },
    /// This broker led the partition and no longer does.
    Lost { topic: String, partition: i32 },
}

type Listener = Rc<dyn Fn(&LeadershipChange)>;

/// Who wants to hear of leadership changes on this shard (the group
/// coordinator, for `__consumer_offsets`). Listeners must not block: they
/// spawn what takes time.
#[derive(Default)]
pub struct LeadershipListeners {
    listeners: RefCell<Vec<Listener>>,
}

impl LeadershipListeners {
    pub fn subscribe(&self, listener: impl Fn(&LeadershipChange) + 'static) {
        self.listeners.borrow_mut().push(Rc::new(listener));
    }

    pub fn publish(&self, change: &LeadershipChange) {
        // A copy, so a listener may subscribe another without a borrow clash.
        let listeners: Vec<Listener> = self.listeners.borrow().clone();
        for listener in listeners {
            listener(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn services_are_found_by_type() {
        let mut services = ShardServices::default();
        services.insert(7u32);
        services.insert(String::from("groups"));
        assert_eq!(services.get::<u32>(), Some(&7));
        assert_eq!(services.get::<String>().map(String::as_str), Some("groups"));
        assert!(services.get::<u64>().is_none());
    }

    #[test]
    #[should_panic(expected = "installed twice")]
    fn a_service_type_is_installed_once() {
        let mut services = ShardServices::default();
        services.insert(1u8);
        services.insert(2u8);
    }

    #[test]
    fn every_listener_hears_every_change() {
        let listeners = LeadershipListeners::default();
        let heard = Rc::new(Cell::new(0));
        for _ in 0..2 {
            let heard = heard.clone();
            listeners.subscribe(move |_| heard.set(heard.get() + 1));
        }
        listeners.publish(&LeadershipChange::Lost {
            topic: "t".into(),
            partition: 0,
        });
        assert_eq!(heard.get(), 2);
    }
}
