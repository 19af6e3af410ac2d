"""Writes corpus/otlp_proto/ from the OTLP/JSON seeds in corpus/otlp_json/
(those the protobuf JSON mapping accepts), with the OpenTelemetry protobuf
classes from the opentelemetry-proto package. Run from fuzz/."""
import pathlib
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

out = pathlib.Path("corpus/otlp_proto")
out.mkdir(parents=True, exist_ok=True)
for src in sorted(pathlib.Path("corpus/otlp_json").iterdir()):
    msg = ExportMetricsServiceRequest()
    try:
        json_format.Parse(src.read_text(), msg, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        print(f"skip {src.name}: {e}")
        continue
    (out / src.name).write_bytes(msg.SerializeToString())
    print(f"wrote {src.name}")
# Invalid: a truncated message and a wrong wire type.
(out / "truncated").write_bytes(b"\x0a\x80\x01\x0a")
(out / "bad_wire_type").write_bytes(b"\x0f\x01\x02\x03")
