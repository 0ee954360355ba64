"""An independent oracle for Strata's record batches: kafka-python's own
RecordBatch v2 code (kafka.record.default_records), not Strata's.

  decode SEGMENT_FILE       prints every record of every batch in a Strata
                            segment file as JSON lines, after kafka-python
                            checked each batch's CRC-32C
  build SPEC_JSON CODEC     builds batches with kafka-python's builder from a
                            JSON list of batches (each a list of records),
                            compressed with CODEC (none, gzip, snappy — the
                            xerial framing kafka-python and Java write —,
                            snappy-raw — raw blocks, as librdkafka writes —,
                            lz4, zstd), and prints each batch as hex, one
                            per line

A record is {"offset", "timestamp", "key", "value", "headers": [[k, v]...]},
byte strings in hex (null for none).
"""
import json
import struct
import sys

import snappy
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "snappy-raw": 0, "lz4": 3, "zstd": 4}
HEADER = 61


def hx(b):
    return None if b is None else bytes(b).hex()


def unhx(s):
    return None if s is None else bytes.fromhex(s)


def decode(path):
    data = open(path, "rb").read()
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length == 0:  # preallocated, never written
            break
        end = pos + 12 + length
        batch = DefaultRecordBatch(data[pos:end])
        if not batch.validate_crc():
            raise SystemExit("batch at byte %d: CRC-32C mismatch" % pos)
        if batch.magic != 2:
            raise SystemExit("batch at byte %d: magic %d" % (pos, batch.magic))
        count = 0
        for r in batch:
            count += 1
            print(json.dumps({
                "batch_base_offset": batch.base_offset,
                "codec": batch.compression_type,
                "producer": [batch.producer_id, batch.producer_epoch, batch.base_sequence],
                "leader_epoch": batch.leader_epoch,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": hx(r.key),
                "value": hx(r.value),
                "headers": [[k, hx(v)] for k, v in r.headers],
            }))
        if count != batch.records_count:
            raise SystemExit("batch at byte %d: %d records, header says %d" % (pos, count, batch.records_count))
        pos = end


def build(spec, codec):
    for records in json.loads(spec):
        b = DefaultRecordBatchBuilder(magic=2, compression_type=CODECS[codec], is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                      batch_size=1 << 20)
        for i, r in enumerate(records):
            headers = [(k, unhx(v)) for k, v in r["headers"]]
            b.append(i, timestamp=r["timestamp"], key=unhx(r["key"]), value=unhx(r["value"]), headers=headers)
        batch = bytes(b.build())
        if codec == "snappy-raw":
            batch = raw_snappy(batch)
        print(batch.hex())


def raw_snappy(batch):
    """Re-encodes an uncompressed batch's records as one raw snappy block
    (python-snappy's), setting the codec bits, the length and the CRC-32C."""
    body = snappy.compress(batch[HEADER:])
    out = bytearray(batch[:HEADER] + body)
    struct.pack_into(">i", out, 8, len(out) - 12)
    attrs = struct.unpack_from(">h", out, 21)[0] | 2
    struct.pack_into(">h", out, 21, attrs)
    struct.pack_into(">I", out, 17, calc_crc32c(bytes(out[21:])))
    return bytes(out)


if __name__ == "__main__":
    {"decode": decode, "build": build}[sys.argv[1]](*sys.argv[2:])
