"""Throughput of librdkafka (confluent-kafka) against Strata's Kafka
listener: produce N records of SIZE bytes to TOPIC (acks=1, 1 MiB batches,
5 ms linger, no compression), or read them back from the beginning. Prints
one JSON line: {"records", "seconds", "mb_per_sec", "records_per_sec",
"client_cpu"}. Used by tests/bench/kafka_door.sh.

  kafka_door.py produce BOOTSTRAP TOPIC N SIZE
  kafka_door.py consume BOOTSTRAP TOPIC N
"""
import json
import os
import resource
import sys
import time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def produce(bootstrap, topic, n, size):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "batch.size": 1 << 20,
                  "queue.buffering.max.kbytes": 1 << 20, "queue.buffering.max.messages": 1000000,
                  "enable.idempotence": False, "compression.type": "none"})
    value = os.urandom(size)
    start, c0 = time.time(), cpu()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.001)
    p.flush(120)
    return n, time.time() - start, cpu() - c0, size


def consume(bootstrap, topic, n):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-unused", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 16 << 20})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, size = 0, 0
    start, c0 = time.time(), cpu()
    while got < n:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                got += 1
                size = len(m.value())
    elapsed = time.time() - start
    c.close()
    return got, elapsed, cpu() - c0, size


def main():
    if sys.argv[1] == "produce":
        n, secs, client_cpu, size = produce(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        n, secs, client_cpu, size = consume(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    print(json.dumps({"records": n, "seconds": secs, "mb_per_sec": n * size / secs / 1e6,
                      "records_per_sec": n / secs, "client_cpu": client_cpu}))


if __name__ == "__main__":
    main()
