"""The target types the converter tests (text and binary COPY) convert into."""

from ansible.module_utils.convert.types import TargetType

TEXT = TargetType("text")
F8 = TargetType("float8", "double precision")
I4 = TargetType("int4", "integer")
I8 = TargetType("int8", "bigint")
I2 = TargetType("int2", "smallint")
BOOL = TargetType("bool", "boolean")
DATE = TargetType("date")
TSTZ = TargetType("timestamptz", "timestamp with time zone")
TS = TargetType("timestamp", "timestamp without time zone")
