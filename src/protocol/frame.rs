//! The frame header (RFC 6455 §5.2): parsing and encoding.

use bytes::{BufMut, BytesMut};

use super::ProtocolError;

/// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A later fragment of a message.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl OpCode {
    /// The opcode for the 4 low bits of the first header byte.
    pub fn from_bits(bits: u8) -> Result<Self, ProtocolError> {
        Ok(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xa => Self::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The 4 bits on the wire.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xa,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The last frame of its message.
    pub fin: bool,
    /// RSV1 (per-message compression when negotiated).
    pub rsv1: bool,
    /// RSV2 or RSV3: never valid without an extension that defines them.
    pub rsv23: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not hold the whole header yet, or
    /// the header and its encoded length. Rules that hold for every frame
    /// whatever came before it are checked here: reserved opcodes, control
    /// frames that are fragmented or longer than 125 bytes, and a 64-bit
    /// length with its top bit set.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let opcode = OpCode::from_bits(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let (len, len_bytes) = match b1 & 0x7f {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => (u64::from_be_bytes(*bytes), 8),
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if len >> 63 != 0 {
            return Err(ProtocolError::InvalidLength);
        }
        if opcode.is_control() {
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let mut header_len = 2 + len_bytes;
        let mask = if masked {
            let key = rest[len_bytes..].first_chunk::<4>().copied();
            let Some(key) = key else { return Ok(None) };
            header_len += 4;
            Some(key)
        } else {
            None
        };
        let header = Self {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv23: b0 & 0x30 != 0,
            opcode,
            mask,
            len,
        };
        Ok(Some((header, header_len)))
    }

    /// How many bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the header to `dst`, with the shortest length encoding.
    pub fn encode(&self, dst: &mut BytesMut) {
        let b0 = u8::from(self.fin) << 7
            | u8::from(self.rsv1) << 6
            | if self.rsv23 { 0x30 } else { 0 }
            | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        dst.put_u8(b0);
        match self.len {
            0..=125 => dst.put_u8(mask_bit | self.len as u8),
            126..=0xffff => {
                dst.put_u8(mask_bit | 126);
                dst.put_u16(self.len as u16);
            }
            _ => {
                dst.put_u8(mask_bit | 127);
                dst.put_u64(self.len);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv23: false,
            opcode,
            mask,
            len,
        }
    }

    #[test]
    fn round_trips_every_length_class() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = header(OpCode::Binary, len, mask);
                let mut buf = BytesMut::new();
                h.encode(&mut buf);
                assert_eq!(buf.len(), h.encoded_len());
                assert_eq!(FrameHeader::parse(&buf), Ok(Some((h, buf.len()))));
                // Every strict prefix is "need more", never an error.
                for cut in 0..buf.len() {
                    assert_eq!(
                        FrameHeader::parse(&buf[..cut]),
                        Ok(None),
                        "len {len} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_what_no_context_can_fix() {
        assert_eq!(
            FrameHeader::parse(&[0x83, 0x00]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0x8b, 0x00]),
            Err(ProtocolError::ReservedOpcode(0xb))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0x00]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 0x7e, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        let mut huge = vec![0x82, 0x7f];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(FrameHeader::parse(&huge), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn reads_reserved_bits() {
        let (h, _) = FrameHeader::parse(&[0xc1, 0x00]).unwrap().unwrap();
        assert!(h.rsv1 && !h.rsv23);
        let (h, _) = FrameHeader::parse(&[0xa1, 0x00]).unwrap().unwrap();
        assert!(!h.rsv1 && h.rsv23);
    }
}
