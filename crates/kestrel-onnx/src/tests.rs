use prost::Message;

use super::*;

fn tensor(name: &str, dims: &[i64], floats: usize) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: vec![0.5; floats],
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn io(name: &str) -> pb::ValueInfoProto {
    pb::ValueInfoProto { name: name.into(), ..Default::default() }
}

fn model(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(pb::GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![io("x")],
            output: vec![io("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn check(bytes: &[u8]) -> Result<OnnxModel, OnnxError> {
    from_bytes(bytes, None, &Limits::default())
}

#[test]
fn a_valid_graph_loads() {
    let m = model(vec![node("Relu", "r", &["x"], &["y"])], vec![]);
    assert!(check(&m).is_ok());
}

#[test]
fn unknown_op_names_op_and_node() {
    let m = model(vec![node("FrobnicateV9", "n1", &["x"], &["y"])], vec![]);
    let e = check(&m).unwrap_err().to_string();
    assert!(e.contains("FrobnicateV9") && e.contains("n1"), "{e}");
}

#[test]
fn undefined_input_and_output_are_refused() {
    let m = model(vec![node("Add", "a", &["x", "ghost"], &["y"])], vec![]);
    assert!(matches!(check(&m), Err(OnnxError::UndefinedInput { .. })));
    let m = model(vec![node("Relu", "a", &["x"], &["z"])], vec![]);
    assert!(matches!(check(&m), Err(OnnxError::UndefinedOutput { .. })));
}

#[test]
fn cycles_are_refused() {
    let m = model(
        vec![
            node("Add", "a", &["x", "c"], &["b"]),
            node("Relu", "r", &["b"], &["c"]),
            node("Relu", "o", &["c"], &["y"]),
        ],
        vec![],
    );
    assert!(matches!(check(&m), Err(OnnxError::Cycle { .. })));
}

#[test]
fn tensor_sizes_are_checked_before_allocation() {
    let relu = || vec![node("Relu", "r", &["x"], &["y"])];
    let e = check(&model(relu(), vec![tensor("w", &[-3, 2], 0)])).unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    let e = check(&model(relu(), vec![tensor("w", &[1 << 40, 1 << 40], 0)])).unwrap_err();
    assert!(matches!(e, OnnxError::LimitExceeded { .. }), "{e}");
    let e = check(&model(relu(), vec![tensor("w", &[4, 4], 3)])).unwrap_err();
    assert!(e.to_string().contains("need 16"), "{e}");
    let e = check(&model(relu(), vec![tensor("w", &[1; 9], 1)])).unwrap_err();
    assert!(e.to_string().contains("rank"), "{e}");
}

#[test]
fn zero_strides_are_refused() {
    let mut conv = node("Conv", "c", &["x", "w"], &["y"]);
    conv.attribute.push(pb::AttributeProto { name: "strides".into(), ints: vec![1, 0], ..Default::default() });
    let e = check(&model(vec![conv], vec![tensor("w", &[1, 1, 1, 1], 1)])).unwrap_err();
    assert!(matches!(e, OnnxError::BadAttribute { .. }), "{e}");
}

#[test]
fn external_data_cannot_escape_the_model_folder() {
    let mut w = tensor("w", &[2], 0);
    w.data_location = Some(1);
    w.external_data = vec![pb::StringStringEntryProto { key: "location".into(), value: "../../etc/passwd".into() }];
    let m = model(vec![node("Add", "a", &["x", "w"], &["y"])], vec![w]);
    let e = from_bytes(&m, Some(Path::new(".")), &Limits::default()).unwrap_err();
    assert!(matches!(e, OnnxError::ExternalData { .. }), "{e}");
}

#[test]
fn constant_of_shape_gets_a_float_default() {
    let m = model(vec![node("ConstantOfShape", "c", &["x"], &["y"])], vec![]);
    let loaded = check(&m).unwrap();
    let graph = loaded.proto.graph.unwrap();
    let value = graph.node[0].attribute.iter().find(|a| a.name == "value").unwrap();
    assert_eq!(value.t.as_ref().unwrap().data_type, 1);
}

#[test]
fn constant_weights_become_initializers_unless_they_are_outputs() {
    let constant = |out: &str| pb::NodeProto {
        attribute: vec![pb::AttributeProto {
            name: "value".into(),
            r#type: pb::attribute_proto::AttributeType::Tensor as i32,
            t: Some(tensor("", &[2], 2)),
            ..Default::default()
        }],
        ..node("Constant", out, &[], &[out])
    };
    // `w` feeds an Add: it becomes an initializer named `w`; `y` is the graph's output: it stays.
    let m = model(vec![constant("w"), node("Add", "a", &["x", "w"], &["z"]), constant("y")], vec![]);
    let graph = check(&m).unwrap().proto.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Add", "Constant"]);
    assert_eq!(graph.initializer.len(), 1);
    assert_eq!((graph.initializer[0].name.as_str(), graph.initializer[0].float_data.len()), ("w", 2));
}

#[test]
fn one_element_pad_values_become_scalars() {
    let pads =
        pb::TensorProto { name: "p".into(), dims: vec![8], data_type: 7, int64_data: vec![0; 8], ..Default::default() };
    // `v` feeds only the Pad: it becomes a scalar in place; `s` also feeds an Add: the Pad gets a
    // scalar copy and the Add keeps the vector.
    let m = model(
        vec![
            node("Pad", "a", &["x", "p", "v"], &["t"]),
            node("Pad", "b", &["t", "p", "s"], &["u"]),
            node("Add", "c", &["u", "s"], &["y"]),
        ],
        vec![pads, tensor("v", &[1], 1), tensor("s", &[1], 1)],
    );
    let graph = check(&m).unwrap().proto.graph.unwrap();
    let dims = |name: &str| graph.initializer.iter().find(|t| t.name == name).map(|t| t.dims.clone());
    assert_eq!(dims("v"), Some(vec![]));
    assert_eq!(dims("s"), Some(vec![1]));
    assert_eq!(dims("s__scalar"), Some(vec![]));
    assert_eq!(graph.node[1].input[2], "s__scalar");
    assert_eq!(graph.node[2].input[1], "s");
}

#[test]
fn a_minus_infinity_pad_before_a_max_pool_becomes_its_pads() {
    let ints = |name: &str, v: &[i64]| pb::TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: 7,
        int64_data: v.to_vec(),
        ..Default::default()
    };
    let minus_inf = pb::TensorProto {
        name: "v".into(),
        dims: vec![1],
        data_type: 1,
        float_data: vec![f32::NEG_INFINITY],
        ..Default::default()
    };
    let pool = |input: &str, out: &str| pb::NodeProto {
        attribute: vec![pb::AttributeProto {
            name: "kernel_shape".into(),
            r#type: pb::attribute_proto::AttributeType::Ints as i32,
            ints: vec![3, 3],
            ..Default::default()
        }],
        ..node("MaxPool", out, &[input], &[out])
    };
    // The first Pad folds into its MaxPool; the second pads with zeros and stays.
    let m = model(
        vec![node("Pad", "p", &["x", "pads", "v"], &["t"]), pool("t", "u"), node("Pad", "q", &["u", "pads"], &["y"])],
        vec![ints("pads", &[0, 0, 1, 2, 0, 0, 1, 0]), minus_inf],
    );
    let graph = check(&m).unwrap().proto.graph.unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["MaxPool", "Pad"]);
    assert_eq!(graph.node[0].input, ["x"]);
    let pads = graph.node[0].attribute.iter().find(|a| a.name == "pads").unwrap();
    assert_eq!(pads.ints, [1, 2, 1, 0]);
}
