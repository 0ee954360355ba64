use proptest::prelude::*;

use super::*;

const CODECS: [Compression; 4] = [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];

/// Compressible bytes: JSON-like records, as producers send.
fn json_like(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"click\",\"ok\":true}}", i % 97));
    }
    s.into_bytes()
}

proptest! {
    #[test]
    fn every_codec_round_trips(data in proptest::collection::vec(any::<u8>(), 0..70_000), codec in 0usize..4) {
        let codec = CODECS[codec];
        let packed = codec.compress(&data, None).unwrap();
        prop_assert_eq!(codec.decompress(&packed, data.len()).unwrap(), data);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(data in proptest::collection::vec(any::<u8>(), 0..400), codec in 0usize..4) {
        if let Ok(out) = CODECS[codec].decompress(&data, 4096) {
            prop_assert!(out.len() <= 4096);
        }
    }

    #[test]
    fn a_flipped_bit_in_a_compressed_payload_never_panics(flip in any::<usize>(), codec in 0usize..4) {
        let codec = CODECS[codec];
        let data = json_like(200);
        let mut packed = codec.compress(&data, None).unwrap();
        let at = flip % (packed.len() * 8);
        packed[at / 8] ^= 1 << (at % 8);
        if let Ok(out) = codec.decompress(&packed, data.len()) {
            prop_assert!(out.len() <= data.len());
        }
    }
}

#[test]
fn compressible_data_shrinks_with_every_codec() {
    let data = json_like(2000);
    for codec in CODECS {
        let packed = codec.compress(&data, None).unwrap();
        assert!(packed.len() * 3 < data.len(), "{codec}: {} of {}", packed.len(), data.len());
    }
}

#[test]
fn a_decompression_bomb_is_refused_at_the_limit() {
    // 64 MiB of zeros packs into kilobytes; with a 1 MiB limit each codec
    // stops at the limit instead of inflating it.
    let zeros = vec![0u8; 64 << 20];
    for codec in CODECS {
        let bomb = codec.compress(&zeros, None).unwrap();
        assert!(bomb.len() < 4 << 20, "{codec}: {}", bomb.len());
        let err = codec.decompress(&bomb, 1 << 20).unwrap_err();
        assert_eq!(err, CompressionError::TooLarge { codec: codec.name(), limit: 1 << 20 }, "{codec}");
        assert!(err.to_string().contains("inflates past the limit of 1048576 bytes"), "{err}");
    }
    assert!(Compression::None.decompress(&[0; 10], 9).is_err());
}

#[test]
fn a_snappy_block_declaring_gigabytes_is_refused_before_allocating() {
    // A raw block's header is its uncompressed length as a varint: claim
    // 2^32 - 1 bytes and give none of them.
    let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
    let err = Compression::Snappy.decompress(&block, 1 << 20).unwrap_err();
    assert!(matches!(err, CompressionError::TooLarge { .. } | CompressionError::Corrupt { .. }), "{err}");
}

#[test]
fn snappy_reads_the_xerial_framing_java_clients_write() {
    let data = json_like(3000);
    let mut framed = b"\x82SNAPPY\0".to_vec();
    framed.extend_from_slice(&1i32.to_be_bytes());
    framed.extend_from_slice(&1i32.to_be_bytes());
    for chunk in data.chunks(32 * 1024) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        framed.extend_from_slice(&(block.len() as i32).to_be_bytes());
        framed.extend_from_slice(&block);
    }
    assert_eq!(Compression::Snappy.decompress(&framed, data.len()).unwrap(), data);
    assert!(matches!(Compression::Snappy.decompress(&framed, data.len() - 1), Err(CompressionError::TooLarge { .. })));
    let cut = &framed[..framed.len() - 3];
    assert!(matches!(Compression::Snappy.decompress(cut, data.len()), Err(CompressionError::Corrupt { .. })));
}

#[test]
fn lz4_writes_kafkas_frame_independent_64k_blocks() {
    let packed = Compression::Lz4.compress(&json_like(10), None).unwrap();
    assert_eq!(&packed[..4], &[0x04, 0x22, 0x4d, 0x18], "LZ4 frame magic");
    let flg = packed[4];
    assert_eq!(flg >> 6, 0b01, "frame version 01");
    assert_ne!(flg & 0x20, 0, "independent blocks");
    assert_eq!(flg & 0x10, 0, "no block checksums");
    assert_eq!(packed[5] >> 4 & 0x7, 4, "64 KiB blocks");
}

#[test]
fn names_and_levels_are_kafkas() {
    for codec in Compression::ALL {
        assert_eq!(codec.name().parse::<Compression>().unwrap(), codec);
        assert_eq!(Compression::from_id(codec.id()), Some(codec));
    }
    assert_eq!("uncompressed".parse::<Compression>().unwrap(), Compression::None);
    assert_eq!(Compression::from_id(5), None);
    let e = "brotli".parse::<Compression>().unwrap_err();
    assert!(e.to_string().contains("brotli"), "{e}");
    assert!(Compression::Gzip.compress(b"x", Some(10)).unwrap_err().to_string().contains("levels 1 to 9"));
    assert!(Compression::Snappy.check_level(Some(1)).unwrap_err().to_string().contains("no levels"));
    let data = json_like(500);
    for level in [1, 9] {
        let packed = Compression::Gzip.compress(&data, Some(level)).unwrap();
        assert_eq!(Compression::Gzip.decompress(&packed, data.len()).unwrap(), data);
    }
    let packed = Compression::Zstd.compress(&data, Some(19)).unwrap();
    assert_eq!(Compression::Zstd.decompress(&packed, data.len()).unwrap(), data);
}
