//! The wire codec: bincode 2 (serde API, standard config) for values, and length-delimited
//! frames whose first byte is [`FORMAT_VERSION`]. The only module that touches bincode.

use bytes::{Buf, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// Version byte that opens every frame on the wire.
pub const FORMAT_VERSION: u8 = 1;

/// Default cap on one frame: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Errors of encoding, decoding or framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode failed: {0}")]
    Decode(String),
    /// The bytes decoded but left unread bytes behind.
    #[error("decode left {trailing} trailing bytes of {total}")]
    TrailingBytes {
        /// Unread bytes.
        trailing: usize,
        /// Total input length.
        total: usize,
    },
    /// A frame was empty (no version byte).
    #[error("empty frame: missing format version byte")]
    EmptyFrame,
    /// A frame carries a format version this build does not speak.
    #[error("unsupported wire format version {found} (this build speaks version {expected})")]
    Version {
        /// The version byte received.
        found: u8,
        /// [`FORMAT_VERSION`].
        expected: u8,
    },
    /// A frame is malformed in some other way.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `v` with bincode (standard config).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(v, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a whole buffer produced by [`encode`]; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice::<T, _>(b, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != b.len() {
        return Err(CodecError::TrailingBytes {
            trailing: b.len() - used,
            total: b.len(),
        });
    }
    Ok(v)
}

/// Strips and checks the version byte of a frame, returning the payload.
pub fn open_frame(frame: &[u8]) -> Result<&[u8], CodecError> {
    match frame.split_first() {
        None => Err(CodecError::EmptyFrame),
        Some((&FORMAT_VERSION, rest)) => Ok(rest),
        Some((&found, _)) => Err(CodecError::Version {
            found,
            expected: FORMAT_VERSION,
        }),
    }
}

/// A length-delimited codec with the given cap (4-byte big-endian length prefix).
pub fn length_delimited(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// Errors of reading frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced frame length is over the cap.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The underlying stream failed.
    #[error("frame i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Frame decoder for the frames [`length_delimited`] writes (a 4-byte big-endian length, then
/// the frame), refusing one whose announced size is over the cap before reading it.
///
/// It keeps no state between calls: a frame that arrives in several reads is decoded once
/// all of it is buffered, and the length is always read from the frame's own header.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder { max }
    }
}

const LENGTH_BYTES: usize = 4;

impl Decoder for FrameDecoder {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if src.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let size = (&src[..LENGTH_BYTES]).get_u32() as usize;
        if size > self.max {
            return Err(FrameError::TooLarge {
                size,
                max: self.max,
            });
        }
        if src.len() < LENGTH_BYTES + size {
            src.reserve(LENGTH_BYTES + size - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_BYTES);
        Ok(Some(src.split_to(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct LogId {
        term: u64,
        node: u64,
        index: u64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Payload {
        Blank,
        Normal(Vec<u8>),
        Membership {
            configs: Vec<Vec<u64>>,
            nodes: BTreeMap<u64, String>,
        },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Entry {
        log_id: LogId,
        payload: Payload,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct AppendEntries {
        vote: (u64, Option<u64>, bool),
        prev_log_id: Option<LogId>,
        entries: Vec<Entry>,
        leader_commit: Option<LogId>,
        revision: u128,
        signed: i64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Response {
        Success,
        PartialSuccess(Option<LogId>),
        Conflict,
        HigherVote { term: u64, node: Option<u64> },
    }

    #[test]
    fn openraft_like_types_round_trip() {
        let mut nodes = BTreeMap::new();
        nodes.insert(1, "a".to_string());
        nodes.insert(2, "b".to_string());
        let req = AppendEntries {
            vote: (3, Some(1), true),
            prev_log_id: None,
            entries: vec![
                Entry {
                    log_id: LogId {
                        term: 1,
                        node: 1,
                        index: 1,
                    },
                    payload: Payload::Blank,
                },
                Entry {
                    log_id: LogId {
                        term: 1,
                        node: 1,
                        index: 2,
                    },
                    payload: Payload::Normal(vec![0, 255, 7]),
                },
                Entry {
                    log_id: LogId {
                        term: 2,
                        node: 2,
                        index: 3,
                    },
                    payload: Payload::Membership {
                        configs: vec![vec![1, 2], vec![1, 2, 3]],
                        nodes,
                    },
                },
            ],
            leader_commit: Some(LogId {
                term: 2,
                node: 2,
                index: 3,
            }),
            revision: u128::MAX - 5,
            signed: -42,
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(decode::<AppendEntries>(&bytes).unwrap(), req);
        for r in [
            Response::Success,
            Response::PartialSuccess(None),
            Response::Conflict,
            Response::HigherVote {
                term: 9,
                node: Some(2),
            },
        ] {
            assert_eq!(decode::<Response>(&encode(&r).unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn trailing_and_garbage_are_errors() {
        let mut b = encode(&5u32).unwrap();
        b.push(0);
        assert!(matches!(
            decode::<u32>(&b),
            Err(CodecError::TrailingBytes { trailing: 1, .. })
        ));
        assert!(decode::<String>(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn frame_version_is_checked() {
        assert_eq!(open_frame(&[FORMAT_VERSION, 1, 2]).unwrap(), &[1, 2]);
        assert_eq!(open_frame(&[]), Err(CodecError::EmptyFrame));
        assert_eq!(
            open_frame(&[9, 1]),
            Err(CodecError::Version {
                found: 9,
                expected: FORMAT_VERSION
            })
        );
    }

    #[test]
    fn decoder_reports_oversized_length() {
        let mut d = FrameDecoder::new(10);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 11, 1][..]);
        match d.decode(&mut buf) {
            Err(FrameError::TooLarge { size: 11, max: 10 }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut buf = BytesMut::from(&[0u8, 0, 0, 2, 7, 8][..]);
        assert_eq!(&d.decode(&mut buf).unwrap().unwrap()[..], &[7, 8]);
    }

    #[test]
    fn frame_arriving_in_pieces_is_decoded_once_whole() {
        use tokio_util::codec::Encoder;
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        length_delimited(1 << 20)
            .encode(bytes::Bytes::from(payload.clone()), &mut wire)
            .unwrap();
        let mut d = FrameDecoder::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut got = None;
        for chunk in wire.chunks(1200) {
            buf.extend_from_slice(chunk);
            if let Some(frame) = d.decode(&mut buf).unwrap() {
                assert!(got.is_none(), "one frame decoded once");
                got = Some(frame);
            }
        }
        assert_eq!(got.expect("the frame").to_vec(), payload);
        assert!(buf.is_empty());
    }
}
