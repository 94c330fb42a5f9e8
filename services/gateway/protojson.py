"""The HTTP API's JSON: the protobuf JSON mapping of the emotion.v1 messages with their proto field names,
and JSON Schemas derived from the same descriptors so the OpenAPI document says exactly what is sent.

Responses print every field without presence (scalars, enums, repeated fields) even when zero, so those
are `required`; message fields and proto3 `optional` fields appear only when set.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.gateway.errors import invalid

_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_UINT32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UINT64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}


def to_json(message: Message) -> dict:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def from_json(data: Any, message_class: type[Message]) -> Message:
    """Parse a JSON body into a request message; unknown fields and wrong types are INVALID_ARGUMENT."""
    if not isinstance(data, dict):
        raise invalid("", "the request body must be a JSON object")
    try:
        return json_format.ParseDict(data, message_class(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        field = ""
        for name in message_class.DESCRIPTOR.fields_by_name:
            if f'"{name}"' in str(exc) or f" {name} " in str(exc) or str(exc).endswith(f" {name}"):
                field = name
                break
        raise invalid(field, f"invalid request body: {exc}") from None


def _scalar_schema(field: FieldDescriptor, components: dict, request: bool) -> dict:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind in _INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    if kind in _UINT32:
        return {"type": "integer", "format": "int32", "minimum": 0, "maximum": 2**32 - 1}
    if kind in _INT64 or kind in _UINT64:
        pattern = "^[0-9]+$" if kind in _UINT64 else "^-?[0-9]+$"
        return {"type": "string", "format": "int64", "pattern": pattern}
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    if kind == FieldDescriptor.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return message_schema(field.message_type, components, request)
    raise ValueError(f"unsupported field type {kind} of {field.full_name}")


def message_schema(descriptor: Descriptor, components: dict, request: bool = False) -> dict:
    """A $ref to the message's schema, added (with its dependencies) to `components`."""
    if descriptor.full_name == "google.protobuf.Timestamp":
        return {"type": "string", "format": "date-time"}
    name = descriptor.name  # unique within emotion.v1
    ref = {"$ref": f"#/components/schemas/{name}"}
    if name in components:
        return ref
    components[name] = {}  # placeholder against recursion
    properties: dict[str, dict] = {}
    required: list[str] = []
    for field in descriptor.fields:
        schema = _scalar_schema(field, components, request)
        if field.is_repeated:
            schema = {"type": "array", "items": schema}
        properties[field.name] = schema
        if not request and not field.has_presence:
            required.append(field.name)
    schema: dict[str, Any] = {
        "type": "object",
        "title": descriptor.name,
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    components[name] = schema
    return ref
