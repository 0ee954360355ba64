//! Pulls the pages of a read into memory before a server hands them to a
//! socket. Reads return zero-copy slices of a segment's mapping; for a cold
//! segment the page faults would otherwise happen inside the socket write, on
//! an async worker thread, stalling every connection that worker serves while
//! the disk answers.

/// The size the kernel maps pages in (the smallest on every platform we run).
const PAGE: usize = 4096;

/// Touches one byte of every page of `bytes` so they are resident when this
/// returns (a blocking call: run it where blocking is allowed). Returns a
/// value derived from the bytes read, so the reads cannot be optimised out.
pub fn fault_in(bytes: &[u8]) -> u8 {
    let mut acc = 0u8;
    let mut i = 0;
    while i < bytes.len() {
        acc ^= std::hint::black_box(bytes[i]);
        i += PAGE;
    }
    if let Some(&last) = bytes.last() {
        acc ^= std::hint::black_box(last);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_and_the_last_byte_are_read() {
        assert_eq!(fault_in(&[]), 0);
        assert_eq!(fault_in(&[7]), 0, "one byte is both the first and the last");
        let mut v = vec![0u8; 3 * PAGE + 10];
        v[0] = 1;
        v[PAGE] = 2;
        v[2 * PAGE] = 4;
        v[3 * PAGE] = 8;
        *v.last_mut().unwrap_or(&mut 0) = 16;
        assert_eq!(fault_in(&v), 31);
    }
}
