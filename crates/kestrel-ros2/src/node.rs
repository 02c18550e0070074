//! One ROS 2 node per `kestrel watch`: its DDS participant on `ROS_DOMAIN_ID`, and the topics
//! and QoS it reads and writes with.

use ros2_client::{
    qos::{Durability, History, Reliability},
    Context, ContextOptions, MessageTypeName, Name, Node, NodeName, NodeOptions, Publisher, QosProfile, Subscription,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::msg::RosMessage;
use crate::RosError;

/// Where the node lives in the ROS graph, and how it delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    pub name: String,
    pub namespace: String,
    pub domain_id: u16,
    /// Reliable delivery for images in and results out; default: the sensor-data profile
    /// (best effort, keep last), as camera drivers publish.
    pub reliable: bool,
}

/// `ROS_DOMAIN_ID` as ROS reads it: unset or empty is domain 0.
pub fn domain_id_from_env() -> Result<u16, RosError> {
    let value = std::env::var("ROS_DOMAIN_ID").unwrap_or_default();
    if value.trim().is_empty() {
        return Ok(0);
    }
    // DDS maps domains to UDP ports: 232 is the largest that fits.
    match value.trim().parse::<u16>() {
        Ok(d) if d <= 232 => Ok(d),
        _ => Err(RosError::DomainId { value }),
    }
}

fn describe(e: &ros2_client::names::NameError) -> String {
    use ros2_client::names::NameError;
    match e {
        NameError::Empty => "empty".into(),
        NameError::BadChar(c) => format!("{c:?} is not allowed there"),
        NameError::BadSlash(..) => "a `/` out of place".into(),
    }
}

/// A node on the ROS 2 graph.
pub struct RosNode {
    node: Node,
    settings: NodeSettings,
}

impl RosNode {
    pub fn new(settings: NodeSettings) -> Result<RosNode, RosError> {
        let node_name = NodeName::new(&settings.namespace, &settings.name).map_err(|e| RosError::Name {
            name: format!("{}/{}", settings.namespace.trim_end_matches('/'), settings.name),
            why: format!("{} (a node name is letters, digits and _, the namespace starts with /)", describe(&e)),
        })?;
        let create =
            |what: &str, e: &dyn std::fmt::Debug| RosError::Create { what: what.into(), why: format!("{e:?}") };
        let context = Context::with_options(ContextOptions::new().domain_id(settings.domain_id))
            .map_err(|e| create(&format!("participant on domain {}", settings.domain_id), &e))?;
        // No rosout and no parameter services: those need the node's async spinner, and a
        // perception node has no parameters to serve.
        let options = NodeOptions::new().enable_rosout(false).start_parameter_services(false);
        let node = context.new_node(node_name, options).map_err(|e| create("node", &e))?;
        Ok(RosNode { node, settings })
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// The sensor-data profile, or reliable when asked; keep last `depth`.
    fn stream_qos(&self, depth: usize) -> QosProfile {
        let qos = QosProfile::subscription_default().history(History::KeepLast { depth });
        if self.settings.reliable {
            qos.reliability(QosProfile::publisher_default().reliability)
        } else {
            qos.reliability(Reliability::BestEffort)
        }
    }

    /// Reliable and transient local, last one kept: late joiners get it (`LabelInfo`).
    fn latched_qos() -> QosProfile {
        QosProfile::publisher_default().durability(Durability::TransientLocal).history(History::KeepLast { depth: 1 })
    }

    /// A topic name as ROS resolves it: a relative one lives in the node's namespace.
    pub fn resolve(&self, name: &str) -> String {
        if name.starts_with('/') {
            return name.to_string();
        }
        match self.settings.namespace.trim_matches('/') {
            "" => format!("/{name}"),
            ns => format!("/{ns}/{name}"),
        }
    }

    fn topic<M: RosMessage>(&self, name: &str, qos: &QosProfile) -> Result<ros2_client::dds::rustdds::Topic, RosError> {
        // Resolved here: ros2-client writes a relative name under the root namespace as
        // `rt//name`, which no other DDS participant's `rt/name` matches.
        let parsed = Name::parse(&self.resolve(name)).map_err(|e| RosError::Name {
            name: name.to_string(),
            why: format!("{} (a topic name is letters, digits and _, in /-separated parts)", describe(&e)),
        })?;
        self.node
            .create_topic(&parsed, MessageTypeName::new(M::PACKAGE, M::NAME), qos)
            .map_err(|e| RosError::Create { what: format!("topic `{name}`"), why: format!("{e:?}") })
    }

    /// A publisher of a stream of `M` (sensor-data or reliable QoS).
    pub(crate) fn stream_publisher<M: RosMessage + Serialize>(&mut self, name: &str) -> Result<Publisher<M>, RosError> {
        self.publisher(name, self.stream_qos(5))
    }

    /// A publisher whose last message late subscribers still receive.
    pub(crate) fn latched_publisher<M: RosMessage + Serialize>(
        &mut self,
        name: &str,
    ) -> Result<Publisher<M>, RosError> {
        self.publisher(name, Self::latched_qos())
    }

    fn publisher<M: RosMessage + Serialize>(&mut self, name: &str, qos: QosProfile) -> Result<Publisher<M>, RosError> {
        let topic = self.topic::<M>(name, &qos)?;
        self.node
            .create_publisher(&topic, Some(qos))
            .map_err(|e| RosError::Create { what: format!("publisher on `{name}`"), why: format!("{e:?}") })
    }

    /// A subscription to a stream of `M`, keeping only the newest few.
    pub(crate) fn subscription<M: RosMessage + DeserializeOwned + 'static>(
        &mut self,
        name: &str,
    ) -> Result<Subscription<M>, RosError> {
        let qos = self.stream_qos(2);
        let topic = self.topic::<M>(name, &qos)?;
        self.node
            .create_subscription(&topic, Some(qos))
            .map_err(|e| RosError::Create { what: format!("subscription to `{name}`"), why: format!("{e:?}") })
    }
}
