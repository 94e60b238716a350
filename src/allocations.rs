//! Bookkeeping of the buffers that cross the boundary, so the ABI can refuse
//! a pointer that is not live instead of handing it to the allocator.

use std::collections::BTreeMap;

/// Who made a buffer, which decides how it may be freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Made by the host's `alloc` call: input buffers, executor answers.
    Host,
    /// A reply the module returned; `free_mem` frees only these.
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    len: usize,
    owner: Owner,
}

/// The live buffers, by start address.
#[derive(Debug, Default)]
pub struct Allocations {
    live: BTreeMap<usize, Entry>,
}

impl Allocations {
    pub fn insert(&mut self, ptr: usize, len: usize, owner: Owner) {
        self.live.insert(ptr, Entry { len, owner });
    }

    /// Forgets the buffer that starts at `ptr` with exactly `len` bytes;
    /// false, and nothing forgotten, when there is none.
    pub fn remove(&mut self, ptr: usize, len: usize) -> bool {
        let matches = self.live.get(&ptr).is_some_and(|entry| entry.len == len);
        if matches {
            self.live.remove(&ptr);
        }
        matches
    }

    /// Forgets the reply that starts at `ptr` and returns its length.
    pub fn remove_reply(&mut self, ptr: usize) -> Option<usize> {
        match self.live.get(&ptr) {
            Some(&Entry {
                len,
                owner: Owner::Reply,
            }) => {
                self.live.remove(&ptr);
                Some(len)
            }
            _ => None,
        }
    }

    /// Whether `[ptr, ptr + len)` lies inside one live host buffer.
    pub fn holds_host_range(&self, ptr: usize, len: usize) -> bool {
        let Some(end) = ptr.checked_add(len) else {
            return false;
        };
        self.live
            .range(..=ptr)
            .next_back()
            .is_some_and(|(&start, entry)| entry.owner == Owner::Host && end <= start + entry.len)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_must_lie_inside_one_live_host_buffer() {
        let mut live = Allocations::default();
        live.insert(100, 10, Owner::Host);
        live.insert(110, 5, Owner::Reply);
        assert!(live.holds_host_range(100, 10));
        assert!(live.holds_host_range(105, 5));
        assert!(live.holds_host_range(105, 0));
        assert!(!live.holds_host_range(100, 11));
        assert!(!live.holds_host_range(99, 1));
        assert!(!live.holds_host_range(111, 1), "replies are not inputs");
        assert!(!live.holds_host_range(usize::MAX, 2));
        assert!(!Allocations::default().holds_host_range(0, 0));
    }

    #[test]
    fn remove_needs_the_exact_start_and_length() {
        let mut live = Allocations::default();
        live.insert(100, 10, Owner::Host);
        assert!(!live.remove(100, 9));
        assert!(!live.remove(101, 10));
        assert_eq!(live.len(), 1);
        assert!(live.remove(100, 10));
        assert!(!live.remove(100, 10), "a second free is refused");
        assert!(live.is_empty());
    }

    #[test]
    fn remove_reply_frees_only_replies() {
        let mut live = Allocations::default();
        live.insert(100, 10, Owner::Host);
        live.insert(200, 20, Owner::Reply);
        assert_eq!(live.remove_reply(100), None);
        assert_eq!(live.remove_reply(201), None);
        assert_eq!(live.remove_reply(200), Some(20));
        assert_eq!(live.remove_reply(200), None);
        assert_eq!(live.len(), 1);
    }
}
