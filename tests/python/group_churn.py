"""A consumer group whose membership changes while records flow, driven by
a real Kafka client: each member runs in its own thread (as applications
run them), auto-commits, and the script checks that nothing was lost.

  group_churn.py CLIENT BOOTSTRAP TOPIC GROUP N

CLIENT is `kafka-python` (classic protocol), `confluent-classic`
(librdkafka, classic protocol) or `confluent-consumer` (librdkafka,
group.protocol=consumer, KIP-848). TOPIC must have 6 partitions. Stages,
each producing N records of its own tag (confluent producer) and waiting
(at most 60 s) until every record of the tag arrived and the live members
own disjoint, non-empty sets of partitions covering all six:

  two    members m0 and m1 join
  three  m2 joins
  left   m0 leaves (close: commit, LeaveGroup)
  resume m1 and m2 close; a new member m3 joins alone and must read only
         this stage's records: the group's commits say where to resume

Prints {"stages": {stage: {"ok", "assignments", "seconds"}}, "check": the
check of every record received (at least once: duplicates are counted,
not failed), "duplicates", "resumed_old": records of earlier stages that
m3 received}.
"""
import json
import sys
import threading
import time

from kafka_clients import check, produce_confluent

PARTITIONS = set(range(6))


class Member(threading.Thread):
    """One group member polling in its own thread until stopped; records go
    to the shared list, its assignment is published after every poll."""

    def __init__(self, name, client, bootstrap, topic, group, sink, lock):
        super().__init__(name=name, daemon=True)
        self.client, self.bootstrap, self.topic, self.group = client, bootstrap, topic, group
        self.sink, self.lock = sink, lock
        self.assignment = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            consumer, poll, assigned = self.open()
            while not self.stop.is_set():
                got = poll(consumer)
                with self.lock:
                    self.sink.extend((self.name,) + r for r in got)
                self.assignment = assigned(consumer)
            consumer.close()
        except Exception as e:  # reported by the main thread
            self.error = f"{self.name}: {type(e).__name__}: {e}"

    def open(self):
        if self.client == "kafka-python":
            from kafka import KafkaConsumer
            c = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=self.group,
                              auto_offset_reset="earliest", enable_auto_commit=True, auto_commit_interval_ms=200,
                              session_timeout_ms=6000, heartbeat_interval_ms=500, fetch_max_wait_ms=100)

            def poll(c):
                return [(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)
                        for records in c.poll(timeout_ms=500).values() for r in records]
            return c, poll, lambda c: sorted(tp.partition for tp in c.assignment())
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": self.bootstrap, "group.id": self.group, "auto.offset.reset": "earliest",
                "enable.auto.commit": True, "auto.commit.interval.ms": 200}
        if self.client == "confluent-classic":
            conf.update({"group.protocol": "classic", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        else:
            conf["group.protocol"] = "consumer"
        c = Consumer(conf)
        c.subscribe([self.topic])

        def poll(c):
            out = []
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error():
                    raise RuntimeError(f"consume error: {m.error()}")
                out.append((m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
            return out
        return c, poll, lambda c: sorted(tp.partition for tp in c.assignment())


def spread(members):
    """Whether the members own disjoint, non-empty partition sets covering
    the topic."""
    sets = [set(m.assignment) for m in members]
    return all(sets) and sum(len(s) for s in sets) == len(PARTITIONS) and set().union(*sets) == PARTITIONS


def main():
    client, bootstrap, topic, group, n = sys.argv[1:6]
    n = int(n)
    got, lock = [], threading.Lock()
    members = {}
    stages = {}

    def start(name):
        members[name] = Member(name, client, bootstrap, topic, group, got, lock)
        members[name].start()

    def stop(name):
        members[name].stop.set()
        members[name].join(30)

    def stage(tag, live):
        produce_confluent(bootstrap, topic, n, "lz4", tag)
        t0 = time.time()
        ok = False
        while time.time() - t0 < 60:
            errors = [m.error for m in members.values() if m.error]
            if errors:
                raise SystemExit("; ".join(errors))
            with lock:
                have = {r[3] for r in got if r[3].startswith(f"{tag}-".encode())}
            if len(have) == n and spread([members[m] for m in live]):
                ok = True
                break
            time.sleep(0.1)
        stages[tag] = {"ok": ok, "assignments": {m: members[m].assignment for m in live},
                       "seconds": round(time.time() - t0, 1)}

    start("m0")
    start("m1")
    stage("two", ["m0", "m1"])
    start("m2")
    stage("three", ["m0", "m1", "m2"])
    stop("m0")
    stage("left", ["m1", "m2"])
    stop("m1")
    stop("m2")
    start("m3")
    stage("resume", ["m3"])
    stop("m3")
    errors = [m.error for m in members.values() if m.error]
    records = [r[1:] for r in got]
    out = {
        "stages": stages,
        "check": check(records, n, ["two", "three", "left", "resume"]),
        "duplicates": len(records) - len({r[2] for r in records}),
        "resumed_old": sum(1 for r in got if r[0] == "m3" and not r[3].startswith(b"resume-")),
        "errors": errors,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
