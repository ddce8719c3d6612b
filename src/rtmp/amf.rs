//! A look at AMF0 command and data message bodies (AMF0 specification,
//! section 2) before rml_rtmp decodes them: how deeply they nest, how many
//! values they hold, and the first of them, without building anything.
//!
//! rml_amf0 decodes objects and arrays by recursion, one stack frame set
//! per level: about 850 nested strict arrays (4 KiB of input) overflow a
//! 2 MiB tokio worker stack, and a stack overflow aborts the whole process.
//! So every AMF body is walked here first, iteratively, and refused past
//! [`MAX_DEPTH`]. The walk follows rml_amf0's grammar step for step (what
//! it reads, where it stops), except that it does not check UTF-8, so it
//! goes at least as deep as rml_amf0 would on the same bytes.

/// Nesting of objects, ECMA arrays and strict arrays. Encoders send flat
/// `connect` objects and `onMetaData` arrays (depth 1); the deepest seen
/// in the wild are track lists of objects (3). Each level costs rml_amf0
/// about 2.5 KiB of stack; 16 levels stay far below any thread's stack.
pub const MAX_DEPTH: usize = 16;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AMF0 values nested more than {MAX_DEPTH} deep")]
pub struct TooDeep;

/// What a body holds at its top level, as rml_amf0 will see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape<'a> {
    /// Values before the end of the input, an object-end marker or the
    /// first malformed value.
    pub values: usize,
    /// The first value, when it is a string: a command's name, or
    /// `@setDataFrame`.
    pub first_string: Option<&'a [u8]>,
    /// The deepest nesting reached.
    pub depth: usize,
}

/// One open container on the walk.
enum Open {
    /// An object or ECMA array: properties until an empty name and
    /// an object-end marker.
    Object,
    /// A strict array with this many values still to read.
    Array(u32),
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }

    /// `Read::read` on a `Cursor`: up to `n` bytes, fewer at the end.
    fn take_up_to(&mut self, n: usize) -> &'a [u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let s = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        s
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }
}

/// A value just read: a leaf, a container opened, or none (the end).
enum Value<'a> {
    Leaf(Option<&'a [u8]>),
    Opened(Open),
    End,
}

/// Reads one value's marker and, for leaves, its body (rml_amf0
/// `read_next_value`). `None` is a malformed value: rml_amf0 stops there
/// with an error, and so does the walk.
fn next_value<'a>(c: &mut Cursor<'a>) -> Option<Value<'a>> {
    let Some(marker) = c.u8() else {
        return Some(Value::End);
    };
    Some(match marker {
        OBJECT_END => Value::End,
        NUMBER => {
            c.take(8)?;
            Value::Leaf(None)
        }
        BOOLEAN => {
            c.take(1)?;
            Value::Leaf(None)
        }
        NULL | UNDEFINED => Value::Leaf(None),
        STRING => {
            let len = c.u16()?;
            Value::Leaf(Some(c.take_up_to(usize::from(len))))
        }
        OBJECT => Value::Opened(Open::Object),
        ECMA_ARRAY => {
            c.u32()?;
            Value::Opened(Open::Object)
        }
        STRICT_ARRAY => Value::Opened(Open::Array(c.u32()?)),
        _ => return None,
    })
}

/// Walks `body` as rml_amf0's `deserialize` would read it.
pub fn shape(body: &[u8]) -> Result<Shape<'_>, TooDeep> {
    let mut c = Cursor { data: body, pos: 0 };
    let mut shape = Shape::default();
    let mut stack: Vec<Open> = Vec::new();
    loop {
        // Inside a container: read what it expects next, or close it.
        let value = match stack.last_mut() {
            None => {
                let Some(v) = next_value(&mut c) else {
                    return Ok(shape);
                };
                match v {
                    Value::End => return Ok(shape),
                    Value::Leaf(s) => {
                        if shape.values == 0 {
                            shape.first_string = s;
                        }
                        shape.values += 1;
                        continue;
                    }
                    Value::Opened(open) => {
                        shape.values += 1;
                        open
                    }
                }
            }
            Some(Open::Array(0)) => {
                stack.pop();
                continue;
            }
            Some(Open::Array(left)) => {
                *left -= 1;
                match next_value(&mut c) {
                    None => return Ok(shape),
                    // An end marker ends the array early.
                    Some(Value::End) => {
                        stack.pop();
                        continue;
                    }
                    Some(Value::Leaf(_)) => continue,
                    Some(Value::Opened(open)) => open,
                }
            }
            Some(Open::Object) => {
                let Some(name_len) = c.u16() else {
                    return Ok(shape);
                };
                if name_len == 0 {
                    if c.u8() != Some(OBJECT_END) {
                        return Ok(shape);
                    }
                    stack.pop();
                    continue;
                }
                c.take_up_to(usize::from(name_len));
                match next_value(&mut c) {
                    None | Some(Value::End) => return Ok(shape),
                    Some(Value::Leaf(_)) => continue,
                    Some(Value::Opened(open)) => open,
                }
            }
        };
        stack.push(value);
        shape.depth = shape.depth.max(stack.len());
        if stack.len() > MAX_DEPTH {
            return Err(TooDeep);
        }
    }
}

/// The name of an AMF0 command (a message of type 20, or 17 with its AMF3
/// marker byte already removed): its first value, a string.
pub fn command_name(body: &[u8]) -> Option<&[u8]> {
    match body {
        [STRING, hi, lo, rest @ ..] => rest.get(..usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::rml_amf0::{self, Amf0Value};
    use std::collections::HashMap;

    fn nested_arrays(levels: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..levels {
            v.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        v
    }

    fn nested_objects(levels: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..levels {
            v.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        v
    }

    fn depth_of(v: &Amf0Value) -> usize {
        match v {
            Amf0Value::Object(m) => 1 + m.values().map(depth_of).max().unwrap_or(0),
            Amf0Value::StrictArray(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn connect() -> Vec<u8> {
        let props: HashMap<String, Amf0Value> = [
            ("app", Amf0Value::Utf8String("live".into())),
            ("tcUrl", Amf0Value::Utf8String("rtmp://h/live".into())),
            ("fpad", Amf0Value::Boolean(false)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        rml_amf0::serialize(&vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(props),
            Amf0Value::Null,
        ])
        .unwrap()
    }

    #[test]
    fn shapes() {
        let track = Amf0Value::Object(
            [("id".to_string(), Amf0Value::Number(1.0))]
                .into_iter()
                .collect(),
        );
        let tracks = rml_amf0::serialize(&vec![
            Amf0Value::Utf8String("@setDataFrame".into()),
            Amf0Value::Utf8String("onMetaData".into()),
            Amf0Value::Object(
                [(
                    "trackinfo".to_string(),
                    Amf0Value::StrictArray(vec![track.clone(), track]),
                )]
                .into_iter()
                .collect(),
            ),
        ])
        .unwrap();
        type Case = (
            &'static str,
            Vec<u8>,
            Result<(usize, Option<&'static [u8]>, usize), TooDeep>,
        );
        let cases: Vec<Case> = vec![
            ("empty", vec![], Ok((0, None, 0))),
            ("connect", connect(), Ok((4, Some(b"connect"), 1))),
            (
                "nested metadata",
                tracks,
                Ok((3, Some(b"@setDataFrame"), 3)),
            ),
            (
                "@setDataFrame alone",
                vec![
                    STRING, 0, 13, b'@', b's', b'e', b't', b'D', b'a', b't', b'a', b'F', b'r',
                    b'a', b'm', b'e',
                ],
                Ok((1, Some(b"@setDataFrame"), 0)),
            ),
            (
                "a string shorter than its length",
                vec![STRING, 0, 9, b'a', b'b'],
                Ok((1, Some(b"ab"), 0)),
            ),
            (
                "a top-level end marker stops the list",
                vec![NULL, OBJECT_END, NULL],
                Ok((1, None, 0)),
            ),
            ("a truncated number", vec![NUMBER, 0, 0], Ok((0, None, 0))),
            ("an unknown marker", vec![0x11, NULL], Ok((0, None, 0))),
            ("16 levels of arrays", nested_arrays(16), Ok((1, None, 16))),
            ("17 levels of arrays", nested_arrays(17), Err(TooDeep)),
            ("17 levels of objects", nested_objects(17), Err(TooDeep)),
            ("4 KiB of nested arrays", nested_arrays(800), Err(TooDeep)),
            (
                "an empty array does not nest",
                [vec![STRICT_ARRAY, 0, 0, 0, 0], nested_arrays(16)].concat(),
                Ok((2, None, 16)),
            ),
            (
                "an ECMA array nests like an object",
                [vec![ECMA_ARRAY, 0, 0, 0, 0, 0, 1, b'k'], nested_objects(16)].concat(),
                Err(TooDeep),
            ),
            (
                "a closed object does not count",
                [vec![OBJECT, 0, 0, OBJECT_END], nested_objects(16)].concat(),
                Ok((2, None, 16)),
            ),
        ];
        for (name, body, want) in cases {
            let got = shape(&body).map(|s| (s.values, s.first_string, s.depth));
            assert_eq!(got, want, "{name}");
            // Where rml_amf0 decodes the body, the walk saw every level.
            let Ok((values, _, depth)) = got else {
                continue;
            };
            if let Ok(decoded) = rml_amf0::deserialize(&mut std::io::Cursor::new(&body)) {
                assert_eq!(decoded.len(), values, "{name}: values");
                let deepest = decoded.iter().map(depth_of).max().unwrap_or(0);
                assert!(deepest <= depth, "{name}: rml_amf0 saw {deepest} levels");
            }
        }
    }

    #[test]
    fn command_names() {
        assert_eq!(command_name(&connect()), Some(&b"connect"[..]));
        assert_eq!(command_name(&[STRING, 0, 5, b'a']), None);
        assert_eq!(command_name(&[NUMBER]), None);
        assert_eq!(command_name(&[]), None);
    }
}
