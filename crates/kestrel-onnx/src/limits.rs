/// Hard limits checked before anything sized by the file is allocated.
///
/// The defaults fit any perception model we expect on an edge device, with margin;
/// raise them explicitly for bigger models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Size of the `.onnx` file itself.
    pub max_file_bytes: u64,
    /// Rank of any tensor or declared input.
    pub max_rank: usize,
    /// Elements in any one tensor (initializer, constant or declared input).
    pub max_tensor_elements: u64,
    /// Bytes in any one tensor.
    pub max_tensor_bytes: u64,
    /// Bytes of all weights together, external data included.
    pub max_total_weight_bytes: u64,
    /// Nodes over all graphs and subgraphs.
    pub max_nodes: usize,
    /// Nesting depth of subgraphs (If/Loop/Scan bodies).
    pub max_subgraph_depth: usize,
    /// Length-delimited protobuf entries (names, nodes, attributes, tensors...): each becomes
    /// an allocation when decoded, so this bounds decoding memory for structure-heavy files.
    pub max_proto_items: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1 << 30,
            max_rank: 8,
            max_tensor_elements: 1 << 30,
            max_tensor_bytes: 1 << 30,
            max_total_weight_bytes: 4 << 30,
            max_nodes: 250_000,
            max_subgraph_depth: 16,
            max_proto_items: 2_000_000,
        }
    }
}
