#!/usr/bin/env python3
"""The other end of Kestrel's ROS 2 tests: Eclipse Cyclone DDS (the `cyclonedds` package, its C
library bundled), with the ROS 2 Humble message types declared through its IDL classes.

It publishes sensor_msgs/Image and CompressedImage messages as a camera driver would and reads
the vision_msgs results Kestrel publishes, printing one JSON line per result:

    cyclone_peer.py plan PLAN.json     send the messages PLAN lists, collect their results
    cyclone_peer.py listen SECONDS [classification]
                                       print the results (Detection2DArray, or Classification)
                                       and class names heard meanwhile
    cyclone_peer.py rate W H SECONDS   publish one WxH frame as fast as results come back
                                        (one in flight), report messages/s and latency

Environment: ROS_DOMAIN_ID (the tests give each run its own), KESTREL_ROS_PREFIX (topic prefix).
"""

import json
import os
import sys
import time
from dataclasses import dataclass

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array, float32, float64, int32, sequence, uint8, uint16, uint32
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic


@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32
    nanosec: uint32


@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time
    frame_id: str


@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header
    height: uint32
    width: uint32
    encoding: str
    is_bigendian: uint8
    step: uint32
    data: sequence[uint8]


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header
    format: str
    data: sequence[uint8]


@dataclass
class Point2D(IdlStruct, typename="vision_msgs::msg::dds_::Point2D_"):
    x: float64
    y: float64


@dataclass
class Pose2D(IdlStruct, typename="vision_msgs::msg::dds_::Pose2D_"):
    position: Point2D
    theta: float64


@dataclass
class BoundingBox2D(IdlStruct, typename="vision_msgs::msg::dds_::BoundingBox2D_"):
    center: Pose2D
    size_x: float64
    size_y: float64


@dataclass
class ObjectHypothesis(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesis_"):
    class_id: str
    score: float64


@dataclass
class Point(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: float64
    y: float64
    z: float64


@dataclass
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64
    y: float64
    z: float64
    w: float64


@dataclass
class Pose(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point
    orientation: Quaternion


@dataclass
class PoseWithCovariance(IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    pose: Pose
    covariance: array[float64, 36]


@dataclass
class ObjectHypothesisWithPose(IdlStruct, typename="vision_msgs::msg::dds_::ObjectHypothesisWithPose_"):
    hypothesis: ObjectHypothesis
    pose: PoseWithCovariance


@dataclass
class Detection2D(IdlStruct, typename="vision_msgs::msg::dds_::Detection2D_"):
    header: Header
    results: sequence[ObjectHypothesisWithPose]
    bbox: BoundingBox2D
    id: str


@dataclass
class Detection2DArray(IdlStruct, typename="vision_msgs::msg::dds_::Detection2DArray_"):
    header: Header
    detections: sequence[Detection2D]


@dataclass
class Classification(IdlStruct, typename="vision_msgs::msg::dds_::Classification_"):
    header: Header
    results: sequence[ObjectHypothesis]


@dataclass
class VisionClass(IdlStruct, typename="vision_msgs::msg::dds_::VisionClass_"):
    class_id: uint16
    class_name: str


@dataclass
class LabelInfo(IdlStruct, typename="vision_msgs::msg::dds_::LabelInfo_"):
    header: Header
    class_map: sequence[VisionClass]
    threshold: float32


# Plain CDR (XCDR1) as ROS 2's DDS layers write it. Images go out reliable (a reliable writer
# serves best-effort and reliable readers alike); results are read best effort, which matches
# Kestrel's sensor-data default and its --ros2-reliable.
CDR = Policy.DataRepresentation(use_cdrv0_representation=True)
IMAGES = Qos(Policy.Reliability.Reliable(max_blocking_time=1_000_000_000), Policy.History.KeepLast(8), CDR)
RESULTS = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(64), CDR)
LATCHED = Qos(
    Policy.Reliability.Reliable(max_blocking_time=1_000_000_000),
    Policy.Durability.TransientLocal,
    Policy.History.KeepLast(1),
    CDR,
)


def read_ppm(path):
    """A binary PPM (P6, maxval 255): width, height, RGB bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while raw[pos : pos + 1].isspace():
            pos += 1
        end = pos
        while not raw[end : end + 1].isspace():
            end += 1
        fields.append(raw[pos:end])
        pos = end
    assert fields[0] == b"P6" and fields[3] == b"255", f"{path}: not an 8-bit P6 PPM"
    w, h = int(fields[1]), int(fields[2])
    return w, h, raw[pos + 1 : pos + 1 + w * h * 3]


def encode(rgb, w, h, encoding):
    """RGB bytes in a sensor_msgs encoding, and the row step."""
    if encoding == "rgb8":
        return rgb, w * 3
    if encoding == "bgr8":
        out = bytearray(rgb)
        out[0::3], out[2::3] = rgb[2::3], rgb[0::3]
        return bytes(out), w * 3
    if encoding == "mono8":
        return bytes((77 * rgb[i] + 150 * rgb[i + 1] + 29 * rgb[i + 2]) >> 8 for i in range(0, len(rgb), 3)), w
    if encoding in ("yuv422", "yuv422_yuy2"):
        out = bytearray()
        for i in range(0, len(rgb), 6):
            px = [rgb[i : i + 3], rgb[i + 3 : i + 6]]
            ys = [min(235, max(16, round(16 + 0.257 * r + 0.504 * g + 0.098 * b))) for r, g, b in px]
            r, g, b = (sum(c) / 2 for c in zip(*px))
            u = min(240, max(16, round(128 - 0.148 * r - 0.291 * g + 0.439 * b)))
            v = min(240, max(16, round(128 + 0.439 * r - 0.368 * g - 0.071 * b)))
            out += bytes([u, ys[0], v, ys[1]] if encoding == "yuv422" else [ys[0], u, ys[1], v])
        return bytes(out), w * 2
    raise ValueError(encoding)


def stamp_of(ns):
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class Peer:
    def __init__(self, results=Detection2DArray):
        domain = int(os.environ.get("ROS_DOMAIN_ID", "0"))
        prefix = os.environ.get("KESTREL_ROS_PREFIX", "kestrel_test")
        self.dp = DomainParticipant(domain)
        topic = lambda name, t: Topic(self.dp, f"rt/{prefix}/{name}", t)
        self.image = DataWriter(self.dp, topic("image", Image), qos=IMAGES)
        self.compressed = DataWriter(self.dp, topic("image/compressed", CompressedImage), qos=IMAGES)
        self.results = DataReader(self.dp, topic("detections", results), qos=RESULTS)
        self.labels = DataReader(self.dp, topic("label_info", LabelInfo), qos=LATCHED)

    def received(self):
        """Results that arrived, as dicts with the receipt time."""
        now = time.time_ns()
        out = []
        for m in self.results.take(N=64):
            if isinstance(m, Classification):
                stamp = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
                classes = [{"class_id": c.class_id, "score": c.score} for c in m.results]
                out.append({"stamp_ns": stamp, "frame_id": m.header.frame_id, "received_ns": now, "classes": classes})
                continue
            out.append(
                {
                    "stamp_ns": m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec,
                    "frame_id": m.header.frame_id,
                    "received_ns": now,
                    "detections": [
                        {
                            "frame_id": d.header.frame_id,
                            "stamp_ns": d.header.stamp.sec * 1_000_000_000 + d.header.stamp.nanosec,
                            "cx": d.bbox.center.position.x,
                            "cy": d.bbox.center.position.y,
                            "w": d.bbox.size_x,
                            "h": d.bbox.size_y,
                            "class_id": d.results[0].hypothesis.class_id if d.results else None,
                            "score": d.results[0].hypothesis.score if d.results else None,
                        }
                        for d in m.detections
                    ],
                }
            )
        return out

    def send(self, msg, stamp_ns):
        header = Header(stamp=stamp_of(stamp_ns), frame_id=msg.get("frame_id", "camera_optical_frame"))
        if msg["kind"] == "compressed":
            with open(msg["file"], "rb") as f:
                data = f.read()
            self.compressed.write(CompressedImage(header=header, format=msg.get("format", "jpeg"), data=data))
            return
        w, h, rgb = read_ppm(msg["ppm"])
        data, step = encode(rgb, w, h, msg.get("encoding", "rgb8"))
        fault = msg.get("fault")
        encoding = msg.get("encoding", "rgb8")
        if fault == "step":
            step -= 1
        elif fault == "short":
            data = data[: len(data) // 2]
        elif fault == "encoding":
            encoding = "bayer_rggb16"
        self.image.write(Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step, data=data))


def run_plan(path):
    """Sends each message; a good one is re-sent every second until its result comes (the first
    ones also wait out discovery), a faulty one is sent once and must never get a result."""
    with open(path) as f:
        plan = json.load(f)
    peer = Peer()
    results = {}
    base = time.time_ns()
    for i, msg in enumerate(plan):
        stamp = base + i * 1_000_000  # distinct, and a real wall-clock capture time
        deadline = time.time() + 60
        peer.send(msg, stamp)
        if msg.get("fault"):
            continue
        last = time.time()
        while stamp not in results:
            for r in peer.received():
                results.setdefault(r["stamp_ns"], r)
            if time.time() > deadline:
                print(json.dumps({"error": f"no result for message {i} within 60 s"}), flush=True)
                return 1
            if time.time() - last > 1.0:
                peer.send(msg, stamp)
                last = time.time()
            time.sleep(0.005)
        print(json.dumps({"message": i, **results[stamp]}), flush=True)
    time.sleep(0.5)
    for r in peer.received():
        results.setdefault(r["stamp_ns"], r)
    faulty = [base + i * 1_000_000 for i, m in enumerate(plan) if m.get("fault")]
    answered = [s for s in faulty if s in results]
    labels = peer.labels.take(N=4)
    print(
        json.dumps(
            {
                "faulty_answered": len(answered),
                "labels": [[c.class_id, c.class_name] for m in labels for c in m.class_map],
                "label_threshold": labels[0].threshold if labels else None,
            }
        ),
        flush=True,
    )
    return 0


def run_listen(seconds, kind):
    peer = Peer(Classification if kind == "classification" else Detection2DArray)
    end = time.time() + seconds
    labels = []
    while time.time() < end:
        for r in peer.received():
            print(json.dumps(r), flush=True)
        labels += peer.labels.take(N=4)
        time.sleep(0.01)
    print(json.dumps({"labels": [[c.class_id, c.class_name] for m in labels for c in m.class_map]}), flush=True)
    return 0


def run_rate(w, h, seconds):
    """One frame in flight at a time: each result's header stamp against its receipt."""
    peer = Peer()
    rgb = bytes((x * 7 + y * 3) % 256 for y in range(h) for x in range(w) for _ in range(3))
    img = lambda ns: Image(
        header=Header(stamp=stamp_of(ns), frame_id="camera"), height=h, width=w, encoding="rgb8",
        is_bigendian=0, step=w * 3, data=rgb,
    )
    # Latency from the header stamp (taken before cyclonedds-python serializes the image, which
    # alone takes ~25 ms for 640x480 RGB) and from write()'s return (the image on the wire).
    latencies, after_write, start, pending, sent_at, written = [], [], None, None, 0.0, 0
    while True:
        now = time.time()
        if pending is None or now - sent_at > 1.0:  # first frame, or one lost: send (again)
            pending = time.time_ns()
            peer.image.write(img(pending))
            written = time.time_ns()
            sent_at = now
        for r in peer.received():
            if r["stamp_ns"] == pending:
                if start is None:
                    start = time.time()  # discovery done: measure from here
                else:
                    latencies.append((r["received_ns"] - r["stamp_ns"]) / 1e6)
                    after_write.append((r["received_ns"] - written) / 1e6)
                pending = None
        if start is not None and time.time() - start > seconds:
            break
        time.sleep(0.0002)
    def q(values):
        values = sorted(values)
        return {p: values[min(len(values) - 1, int(f * len(values)))] for p, f in (("p50", 0.5), ("p99", 0.99))}

    print(json.dumps({"messages_per_s": len(latencies) / seconds, "n": len(latencies),
                      "stamp_to_result_ms": q(latencies), "written_to_result_ms": q(after_write)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "plan":
        sys.exit(run_plan(sys.argv[2]))
    if len(sys.argv) in (3, 4) and sys.argv[1] == "listen":
        sys.exit(run_listen(float(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else "detections"))
    if len(sys.argv) == 5 and sys.argv[1] == "rate":
        sys.exit(run_rate(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
    sys.exit(__doc__)
