//! A global allocator that keeps malformed requests from aborting the process.
//!
//! The protocol codec sizes a `Vec` from an array length read off the wire
//! before it decodes a single element, so a few bytes claiming two billion
//! elements ask for hundreds of GiB at once. An allocation that fails aborts
//! the process (it is not a catchable panic). This allocator serves requests
//! of 1 GiB and more with `mmap(MAP_NORESERVE)`: address space only, backed by
//! memory page by page as it is touched. The decode then fails on the missing
//! bytes after touching at most a page, the `Vec` is dropped, and only that
//! connection is closed. Everything smaller goes to the system allocator.
//! No legitimate allocation of the broker comes near 1 GiB (frames are capped
//! by `socket.request.max.bytes`).
use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are reserved lazily.
const RESERVE_THRESHOLD_BYTES: usize = 1 << 30;
const PAGE_BYTES: usize = 4096;

pub struct ReservingAllocator;

fn reserved(layout: Layout) -> bool {
    layout.size() >= RESERVE_THRESHOLD_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: every pointer handed out is either from `System` (and returned to
// it) or from an anonymous private mapping of exactly `layout.size()` bytes
// (and unmapped with the same size); `reserved` picks the same path for a
// layout on allocation and deallocation.
unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps GlobalAlloc's contract (a live pointer
        // allocated here with this layout); the comment on the impl says
        // why each path is sound.
        unsafe {
            if !reserved(layout) {
                return System.alloc(layout);
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p as *mut u8
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller keeps GlobalAlloc's contract (a live pointer
        // allocated here with this layout); the comment on the impl says
        // why each path is sound.
        unsafe {
            if reserved(layout) {
                // Anonymous mappings are zero-filled.
                self.alloc(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller keeps GlobalAlloc's contract (a live pointer
        // allocated here with this layout); the comment on the impl says
        // why each path is sound.
        unsafe {
            if reserved(layout) {
                libc::munmap(ptr as *mut libc::c_void, layout.size());
            } else {
                System.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller keeps GlobalAlloc's contract (a live pointer
        // allocated here with this layout); the comment on the impl says
        // why each path is sound.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            match (reserved(layout), reserved(new_layout)) {
                (false, false) => return System.realloc(ptr, layout, new_size),
                (true, true) => {
                    // Move the mapping without touching its pages.
                    let p = libc::mremap(
                        ptr as *mut libc::c_void,
                        layout.size(),
                        new_size,
                        libc::MREMAP_MAYMOVE,
                    );
                    return if p == libc::MAP_FAILED {
                        std::ptr::null_mut()
                    } else {
                        p as *mut u8
                    };
                }
                _ => {}
            }
            let new_ptr = self.alloc(new_layout);
            if !new_ptr.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new_ptr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_succeed_and_small_ones_use_the_system() {
        let a = ReservingAllocator;
        // SAFETY: every pointer is used and freed with the layout it was
        // allocated (or reallocated) with, and written only when not null.
        unsafe {
            let big = Layout::from_size_align(300 << 30, 8).unwrap();
            let p = a.alloc(big);
            assert!(!p.is_null(), "300 GiB of address space");
            *p = 7;
            let grown = a.realloc(p, big, 301 << 30);
            assert_eq!(*grown, 7);
            a.dealloc(grown, Layout::from_size_align(301 << 30, 8).unwrap());
            let small = Layout::from_size_align(64, 8).unwrap();
            let q = a.alloc_zeroed(small);
            assert_eq!(*q, 0);
            let q = a.realloc(q, small, 2 << 30);
            assert!(!q.is_null());
            a.dealloc(q, Layout::from_size_align(2 << 30, 8).unwrap());
        }
    }
}
