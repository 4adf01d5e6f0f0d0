//! Buffers whose last element sits right before an inaccessible page, so any SIMD over-read or
//! over-write past the end faults (SIGSEGV) instead of passing silently.
//!
//! This is test support, not library code: the one place in the tests with `unsafe`, for
//! `mmap`/`mprotect`.

use std::ops::{Deref, DerefMut};

/// `len` floats ending exactly at a `PROT_NONE` page.
pub struct Guarded {
    map: *mut libc::c_void,
    map_len: usize,
    data: *mut f32,
    len: usize,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl Guarded {
    /// A guarded copy of `values`.
    pub fn from_slice(values: &[f32]) -> Guarded {
        let mut g = Guarded::new(values.len());
        g.copy_from_slice(values);
        g
    }

    /// `len` floats (zeroed), followed immediately by a guard page.
    pub fn new(len: usize) -> Guarded {
        let page = page_size();
        let bytes = len * 4;
        let body = bytes.div_ceil(page) * page;
        let map_len = body + page;
        // SAFETY: an anonymous private mapping with no address hint; checked for failure below.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(map != libc::MAP_FAILED, "mmap failed");
        // SAFETY: `map + body` is the last page of the mapping we own.
        let rc =
            unsafe { libc::mprotect(map.cast::<u8>().add(body).cast(), page, libc::PROT_NONE) };
        assert_eq!(rc, 0, "mprotect failed");
        // SAFETY: `body - bytes <= body`, inside the mapping; the result is 4-byte aligned because
        // `body` and `bytes` are multiples of 4.
        let data = unsafe { map.cast::<u8>().add(body - bytes).cast::<f32>() };
        Guarded {
            map,
            map_len,
            data,
            len,
        }
    }
}

impl Deref for Guarded {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `data .. data + len` lies inside the readable part of our live mapping.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping `new` created, once.
        unsafe {
            libc::munmap(self.map, self.map_len);
        }
    }
}
