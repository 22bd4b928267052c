//! `--crlf`: each bare LF of the input sent as CRLF, like `nc -C` and `s_client -crlf`.

use bytes::Bytes;

/// Turns bare LFs into CRLF across a stream cut into chunks anywhere: a CR at the end of one
/// chunk and an LF at the start of the next are one CRLF, left alone.
#[derive(Debug, Default)]
pub(crate) struct Crlf {
    /// The last byte of the previous chunk was a CR.
    after_cr: bool,
}

impl Crlf {
    /// The chunk with every bare LF made CRLF; the chunk itself if it has none (no copy).
    pub(crate) fn encode(&mut self, chunk: Bytes) -> Bytes {
        let mut prev_cr = self.after_cr;
        let mut bare = 0usize;
        for &b in chunk.iter() {
            if b == b'\n' && !prev_cr {
                bare += 1;
            }
            prev_cr = b == b'\r';
        }
        let starts_after_cr = std::mem::replace(&mut self.after_cr, prev_cr);
        if bare == 0 {
            return chunk;
        }
        let mut out = Vec::with_capacity(chunk.len() + bare);
        let mut prev_cr = starts_after_cr;
        for &b in chunk.iter() {
            if b == b'\n' && !prev_cr {
                out.push(b'\r');
            }
            out.push(b);
            prev_cr = b == b'\r';
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_whole(input: &[u8]) -> Vec<u8> {
        Crlf::default()
            .encode(Bytes::copy_from_slice(input))
            .to_vec()
    }

    #[test]
    fn bare_lf_becomes_crlf_and_crlf_stays() {
        assert_eq!(encode_whole(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(encode_whole(b"\n\n"), b"\r\n\r\n");
        assert_eq!(encode_whole(b"\r\r\n"), b"\r\r\n");
        assert_eq!(encode_whole(b"no newline"), b"no newline");
    }

    #[test]
    fn a_cr_ending_one_chunk_pairs_with_the_lf_starting_the_next() {
        let mut c = Crlf::default();
        assert_eq!(c.encode(Bytes::from_static(b"EHLO me\r")), "EHLO me\r");
        assert_eq!(c.encode(Bytes::from_static(b"\nQUIT\n")), "\nQUIT\r\n");
    }

    proptest! {
        /// However the input is cut, the output is the same as for the whole input, and it is
        /// the input with a CR before each bare LF.
        #[test]
        fn chunking_never_changes_the_result(
            input in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.push(0);
            cuts.push(input.len());
            cuts.sort_unstable();
            let mut c = Crlf::default();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                got.extend_from_slice(&c.encode(Bytes::copy_from_slice(&input[w[0]..w[1]])));
            }
            let mut want = Vec::new();
            for (i, &b) in input.iter().enumerate() {
                if b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
                    want.push(b'\r');
                }
                want.push(b);
            }
            prop_assert_eq!(got, want);
        }
    }
}
