//! Just enough BER (X.690 §8) to read KMS's CMS answers: single-byte tags (universal and
//! context-specific `[0]`..`[30]`), short and long definite lengths of up to four bytes, and
//! indefinite lengths on constructed elements (contents ended by an end-of-contents `00 00`),
//! nesting bounded by [`MAX_DEPTH`]. Every read is bounds-checked and nothing is allocated
//! except when the pieces of a constructed OCTET STRING are put together ([`octets`]).
//!
//! `contract::der` reads DER only (no indefinite lengths), and KMS's answer is BER; this reader
//! is private to [`super`] so that its permissiveness (non-minimal lengths, BER's constructed
//! strings) stays where a strict structure check follows it.

use super::CmsError;
use std::borrow::Cow;

/// How deep elements may nest. KMS's answer nests 11 levels (the MGF1 hash's OID inside the
/// RSAES-OAEP parameters); anything much deeper is not CMS EnvelopedData we can use.
pub const MAX_DEPTH: usize = 16;

/// `SEQUENCE` (always constructed).
pub const SEQUENCE: u8 = 0x30;
/// `SET` (always constructed).
pub const SET: u8 = 0x31;
/// `INTEGER`.
pub const INTEGER: u8 = 0x02;
/// `OCTET STRING`, primitive.
pub const OCTET_STRING: u8 = 0x04;
/// `OCTET STRING`, constructed (BER: pieces to concatenate).
pub const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
/// `NULL`.
pub const NULL: u8 = 0x05;
/// `OBJECT IDENTIFIER`.
pub const OID: u8 = 0x06;
/// The bit of a tag byte that marks a constructed element.
const CONSTRUCTED: u8 = 0x20;

/// `[n]`, context-specific, primitive.
pub const fn context(n: u8) -> u8 {
    0x80 | n
}

/// `[n]`, context-specific, constructed.
pub const fn context_constructed(n: u8) -> u8 {
    0xa0 | n
}

/// One element: its tag byte and its contents (without the end-of-contents of an
/// indefinite-length element).
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    /// The tag byte (class, constructed bit, number < 31).
    pub tag: u8,
    /// The contents octets.
    pub content: &'a [u8],
    /// How deep this element is (the outermost is 0).
    depth: usize,
}

impl<'a> Tlv<'a> {
    /// Whether the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & CONSTRUCTED != 0
    }

    /// A reader over the elements inside this one.
    pub fn children(&self) -> Result<Reader<'a>, CmsError> {
        let depth = self.depth.checked_add(1).ok_or(CmsError::TooDeep)?;
        if depth > MAX_DEPTH {
            return Err(CmsError::TooDeep);
        }
        Ok(Reader {
            rest: self.content,
            depth,
        })
    }
}

/// A read position over a run of elements (the input, or the contents of one element).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The outermost elements of `input`.
    pub fn new(input: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: input,
            depth: 0,
        }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The tag of the next element, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element, or `None` at the end.
    pub fn next_element(&mut self) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read_one(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next element, which must exist and have `tag` (`field` names it in the error).
    pub fn expect(&mut self, tag: u8, field: &'static str) -> Result<Tlv<'a>, CmsError> {
        match self.next_element()? {
            Some(t) if t.tag == tag => Ok(t),
            Some(t) => Err(CmsError::Unexpected { field, tag: t.tag }),
            None => Err(CmsError::Missing(field)),
        }
    }

    /// The next element if it has `tag`; nothing is consumed otherwise.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, CmsError> {
        if self.peek_tag() == Some(tag) {
            self.next_element()
        } else {
            Ok(None)
        }
    }

    /// Checks that nothing is left (`field` names the element being closed).
    pub fn finish(&self, field: &'static str) -> Result<(), CmsError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CmsError::Extra(field))
        }
    }
}

/// Reads the element at the start of `input`, `depth` deep; returns it and what follows it.
fn read_one(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), CmsError> {
    if depth > MAX_DEPTH {
        return Err(CmsError::TooDeep);
    }
    let (&tag, after_tag) = input.split_first().ok_or(CmsError::Truncated)?;
    if tag == 0 {
        return Err(CmsError::Encoding(
            "end-of-contents outside an indefinite-length element",
        ));
    }
    if tag & 0x1f == 0x1f {
        return Err(CmsError::Encoding("multi-byte tags are not supported"));
    }
    let (&first, after_len) = after_tag.split_first().ok_or(CmsError::Truncated)?;
    match first {
        0x80 => {
            if tag & CONSTRUCTED == 0 {
                return Err(CmsError::Encoding(
                    "indefinite length on a primitive element",
                ));
            }
            let len = indefinite_content_len(after_len, depth)?;
            let (tlv, rest) = definite(tag, len, after_len, depth)?;
            // Past the end-of-contents octets (`00 00`) that closed it.
            let rest = rest.get(2..).ok_or(CmsError::Truncated)?;
            Ok((tlv, rest))
        }
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = after_len.get(..n).ok_or(CmsError::Truncated)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            let after = after_len.get(n..).ok_or(CmsError::Truncated)?;
            definite(tag, len, after, depth)
        }
        0x85..=0xfe => Err(CmsError::Encoding("length of more than four bytes")),
        0xff => Err(CmsError::Encoding("reserved length byte 0xff")),
        short => definite(tag, usize::from(short), after_len, depth),
    }
}

/// The element with `tag` whose `len` content bytes start `after` its header.
fn definite(tag: u8, len: usize, after: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), CmsError> {
    let content = after.get(..len).ok_or(CmsError::Truncated)?;
    let rest = after.get(len..).ok_or(CmsError::Truncated)?;
    Ok((
        Tlv {
            tag,
            content,
            depth,
        },
        rest,
    ))
}

/// The length of the contents of an indefinite-length element `depth` deep whose contents
/// start `input`: the elements up to its end-of-contents `00 00` (not counted).
fn indefinite_content_len(input: &[u8], depth: usize) -> Result<usize, CmsError> {
    let child_depth = depth.checked_add(1).ok_or(CmsError::TooDeep)?;
    let mut rest = input;
    loop {
        match rest {
            [0, 0, ..] => return Ok(input.len() - rest.len()),
            [] | [0] => return Err(CmsError::Truncated),
            [0, _, ..] => return Err(CmsError::Encoding("end-of-contents with a non-zero length")),
            _ => rest = read_one(rest, child_depth)?.1,
        }
    }
}

/// The bytes of an OCTET STRING (`tag` being its primitive tag, which BER may turn into a
/// constructed one of OCTET STRING pieces, themselves possibly constructed): borrowed when
/// primitive, the pieces concatenated otherwise. `field` names it in errors.
pub fn octets<'a>(tlv: Tlv<'a>, field: &'static str) -> Result<Cow<'a, [u8]>, CmsError> {
    if !tlv.constructed() {
        return Ok(Cow::Borrowed(tlv.content));
    }
    let mut out = Vec::new();
    append_pieces(tlv, field, &mut out)?;
    Ok(Cow::Owned(out))
}

/// Appends the pieces of a constructed string to `out` (depth bounded by [`Tlv::children`]).
fn append_pieces(tlv: Tlv<'_>, field: &'static str, out: &mut Vec<u8>) -> Result<(), CmsError> {
    let mut pieces = tlv.children()?;
    while let Some(piece) = pieces.next_element()? {
        match piece.tag {
            OCTET_STRING => out.extend_from_slice(piece.content),
            OCTET_STRING_CONSTRUCTED => append_pieces(piece, field, out)?,
            tag => return Err(CmsError::Unexpected { field, tag }),
        }
    }
    Ok(())
}

/// A non-negative INTEGER that fits in a `u64` (`field` names it in errors). X.690 §8.3.2
/// holds for BER too: the encoding is minimal.
pub fn small_uint(tlv: Tlv<'_>, field: &'static str) -> Result<u64, CmsError> {
    let digits = match tlv.content {
        [] => return Err(CmsError::Malformed(field)),
        [first, ..] if first & 0x80 != 0 => return Err(CmsError::Malformed(field)),
        [0, second, ..] if second & 0x80 == 0 => return Err(CmsError::Malformed(field)),
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    if digits.len() > 8 {
        return Err(CmsError::Malformed(field));
    }
    Ok(digits
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}
