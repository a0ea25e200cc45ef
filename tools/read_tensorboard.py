#!/usr/bin/env python3
"""Prints the scalars of a TensorBoard event file as TensorBoard reads them,
one line each, sorted by step and tag:

    STEP <tab> TAG <tab> VALUE <tab> WALL_TIME

(VALUE is the float32 stored, printed exactly), after a first line
`file_version <tab> VERSION` from the file's first event.

Both readers are the tensorboard package's (tools/install-deps.sh puts it in
.deps/python): its record reader, which checks each record's two CRC-32Cs,
then its EventAccumulator, which gives the scalars its dashboard plots. The
record pass is there because the dashboard's loading stops quietly at a record
that fails a check, as at one still being written; here a damaged or cut
record is an error.

usage: read_tensorboard.py EVENT_FILE
exit:  0 read, 1 the file is damaged (a CRC, a cut record, no Event proto),
       2 usage, or the tensorboard package is missing"""
import sys

USAGE = "usage: read_tensorboard.py EVENT_FILE"


def fail(code: int, message: str) -> int:
    print(f"read_tensorboard.py: {message}", file=sys.stderr)
    return code


def main() -> int:
    if len(sys.argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    path = sys.argv[1]
    try:
        from google.protobuf.message import DecodeError
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
    except ImportError as e:
        return fail(2, f"needs the tensorboard package ({e}): run tools/install-deps.sh, "
                       "then PYTHONPATH=.deps/python")

    # Every record: both CRCs, and an Event proto in it.
    events = []
    try:
        reader = pywrap_tensorflow.PyRecordReader_New(path)
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                break
            events.append(event_pb2.Event.FromString(reader.record()))
    except errors.NotFoundError as e:
        return fail(1, e.message)
    except errors.DataLossError as e:
        return fail(1, f"damaged after {len(events)} good records: {e.message}")
    except DecodeError as e:
        return fail(1, f"{path}: record {len(events) + 1} is no Event proto ({e})")
    if not events or events[0].WhichOneof("what") != "file_version":
        return fail(1, f"{path}: the first event holds no file_version")
    print(f"file_version\t{events[0].file_version}")

    acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})  # 0: keep all
    acc.Reload()
    rows = [(e.step, tag, e.value, e.wall_time) for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]
    for step, tag, value, wall_time in sorted(rows):
        print(f"{step}\t{tag}\t{value!r}\t{wall_time!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
