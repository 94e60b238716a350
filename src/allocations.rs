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

    /// Forgets the buffer that starts at `ptr` and returns its length, if
    /// there is one of that length (when `len` is given) and that owner
    /// (when `owner` is given); otherwise forgets nothing.
    pub fn remove(
        &mut self,
        ptr: usize,
        len: Option<usize>,
        owner: Option<Owner>,
    ) -> Option<usize> {
        let entry = *self.live.get(&ptr)?;
        let matches = len.is_none_or(|len| len == entry.len)
            && owner.is_none_or(|owner| owner == entry.owner);
        if !matches {
            return None;
        }
        self.live.remove(&ptr);
        Some(entry.len)
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
        assert_eq!(live.remove(100, Some(9), None), None);
        assert_eq!(live.remove(101, Some(10), None), None);
        assert_eq!(live.len(), 1);
        assert_eq!(live.remove(100, Some(10), None), Some(10));
        assert_eq!(
            live.remove(100, Some(10), None),
            None,
            "a second free is refused"
        );
        assert!(live.is_empty());
    }

    #[test]
    fn remove_can_ask_for_an_owner() {
        let mut live = Allocations::default();
        live.insert(100, 10, Owner::Host);
        live.insert(200, 20, Owner::Reply);
        assert_eq!(live.remove(100, None, Some(Owner::Reply)), None);
        assert_eq!(live.remove(200, Some(20), Some(Owner::Host)), None);
        assert_eq!(live.remove(201, None, Some(Owner::Reply)), None);
        assert_eq!(live.remove(200, None, Some(Owner::Reply)), Some(20));
        assert_eq!(live.remove(200, None, Some(Owner::Reply)), None);
        assert_eq!(live.len(), 1);
    }
}
