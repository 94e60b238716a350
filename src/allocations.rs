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
    id: u64,
}

/// The live buffers, by start address.
#[derive(Debug, Default)]
pub struct Allocations {
    live: BTreeMap<usize, Entry>,
    /// Ids given so far: a buffer freed and another made at its address get
    /// different ids, so a range can be checked to be still in the same one.
    made: u64,
}

impl Allocations {
    pub fn insert(&mut self, ptr: usize, len: usize, owner: Owner) {
        self.made += 1;
        let id = self.made;
        self.live.insert(ptr, Entry { len, owner, id });
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

    /// The id of the live host buffer that `[ptr, ptr + len)` lies inside,
    /// if there is one.
    pub fn host_buffer_of(&self, ptr: usize, len: usize) -> Option<u64> {
        let end = ptr.checked_add(len)?;
        let (&start, entry) = self.live.range(..=ptr).next_back()?;
        (entry.owner == Owner::Host && end <= start + entry.len).then_some(entry.id)
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
        assert!(live.host_buffer_of(100, 10).is_some());
        assert!(live.host_buffer_of(105, 5).is_some());
        assert!(live.host_buffer_of(105, 0).is_some());
        assert!(live.host_buffer_of(100, 11).is_none());
        assert!(live.host_buffer_of(99, 1).is_none());
        assert!(
            live.host_buffer_of(111, 1).is_none(),
            "replies are not inputs"
        );
        assert!(live.host_buffer_of(usize::MAX, 2).is_none());
        assert!(Allocations::default().host_buffer_of(0, 0).is_none());
    }

    #[test]
    fn a_buffer_made_again_at_the_same_address_is_another_buffer() {
        let mut live = Allocations::default();
        live.insert(100, 10, Owner::Host);
        let first = live.host_buffer_of(102, 4).unwrap();
        assert_eq!(live.host_buffer_of(100, 10), Some(first));
        live.remove(100, Some(10), None).unwrap();
        assert_eq!(live.host_buffer_of(102, 4), None);
        live.insert(100, 10, Owner::Host);
        assert_ne!(live.host_buffer_of(102, 4), Some(first));
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
