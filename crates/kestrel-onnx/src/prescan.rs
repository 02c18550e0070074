//! A walk over the protobuf wire format that counts what decoding would allocate, before
//! decoding. A small file can decode into a huge tree (millions of empty strings, nodes, or
//! subgraphs nested inside subgraphs); this refuses such files while they are still bytes.

use crate::{Limits, OnnxError};

/// Which message a byte range holds, for the fields we descend into.
#[derive(Clone, Copy)]
enum Msg {
    Model,
    Graph,
    Node,
    Attribute,
    Function,
    Tensor,
}

struct Counts<'a> {
    limits: &'a Limits,
    nodes: usize,
    items: u64,
}

/// Counts nodes, repeated entries and subgraph depth of an encoded `ModelProto`.
pub(crate) fn prescan(bytes: &[u8], limits: &Limits) -> Result<(), OnnxError> {
    let mut c = Counts { limits, nodes: 0, items: 0 };
    c.message(bytes, Msg::Model, 0)
}

impl Counts<'_> {
    fn message(&mut self, mut b: &[u8], msg: Msg, depth: usize) -> Result<(), OnnxError> {
        while !b.is_empty() {
            let key = varint(&mut b)?;
            let (field, wire) = (key >> 3, key & 7);
            let payload = match wire {
                0 => {
                    varint(&mut b)?;
                    continue;
                }
                1 => {
                    take(&mut b, 8)?;
                    continue;
                }
                5 => {
                    take(&mut b, 4)?;
                    continue;
                }
                2 => {
                    let len = varint(&mut b)?;
                    take(&mut b, usize::try_from(len).map_err(|_| truncated())?)?
                }
                _ => return Err(OnnxError::Decode("invalid wire type".into())),
            };
            self.item()?;
            match (msg, field) {
                (Msg::Model, 7) => self.message(payload, Msg::Graph, depth)?,
                (Msg::Model, 25) => self.message(payload, Msg::Function, depth)?,
                (Msg::Graph, 1) | (Msg::Function, 7) => {
                    self.nodes += 1;
                    if self.nodes > self.limits.max_nodes {
                        return Err(OnnxError::LimitExceeded {
                            what: "node count of",
                            name: "the model".into(),
                            value: self.nodes as u64,
                            limit: self.limits.max_nodes as u64,
                        });
                    }
                    self.message(payload, Msg::Node, depth)?
                }
                (Msg::Graph, 5) => self.message(payload, Msg::Tensor, depth)?,
                (Msg::Node, 5) => self.message(payload, Msg::Attribute, depth)?,
                (Msg::Attribute, 5 | 10) => self.message(payload, Msg::Tensor, depth)?,
                (Msg::Attribute, 6 | 11) => {
                    if depth + 1 > self.limits.max_subgraph_depth {
                        return Err(OnnxError::LimitExceeded {
                            what: "subgraph nesting of",
                            name: "the model".into(),
                            value: (depth + 1) as u64,
                            limit: self.limits.max_subgraph_depth as u64,
                        });
                    }
                    self.message(payload, Msg::Graph, depth + 1)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn item(&mut self) -> Result<(), OnnxError> {
        self.items += 1;
        if self.items > self.limits.max_proto_items {
            return Err(OnnxError::LimitExceeded {
                what: "protobuf entries (names, nodes, tensors, attributes) of",
                name: "the model".into(),
                value: self.items,
                limit: self.limits.max_proto_items,
            });
        }
        Ok(())
    }
}

fn truncated() -> OnnxError {
    OnnxError::Decode("buffer underflow".into())
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], OnnxError> {
    if b.len() < n {
        return Err(truncated());
    }
    let (head, tail) = b.split_at(n);
    *b = tail;
    Ok(head)
}

fn varint(b: &mut &[u8]) -> Result<u64, OnnxError> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or_else(truncated)?;
        *b = rest;
        if shift == 63 && byte > 1 {
            break;
        }
        v |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(OnnxError::Decode("invalid varint".into()))
}
