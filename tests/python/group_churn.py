"""A consumer group whose membership changes while records flow, driven by
a real Kafka client: each member runs in its own thread (as applications
run them), auto-commits, and the script checks that nothing was lost.

  group_churn.py [static|grow] CLIENT BOOTSTRAP TOPIC GROUP N

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

With `static` (KIP-345, classic protocol): two static members (group.
instance.id) share the topic, then each restarts in turn (close, then a new
consumer with the same instance id); a restarted member gets its partitions
back and no member is ever revoked: no rebalance. Prints {"stages",
"check", "duplicates", "revokes": per member}.

With `grow`: TOPIC has 3 partitions; two members subscribe by pattern
(`^TOPIC$`, a regex subscription) while an idempotent producer sends N
keyed records over a few seconds; meanwhile the topic grows to 6
partitions (confluent-kafka's CreatePartitions). The members must read
every record (stage "ok") and share all six partitions ("spread"). Prints
{"stages", "check", "duplicates", "partitions": those the records came
from}.

Otherwise prints {"stages": {stage: {"ok", "assignments", "seconds"}}, "check": the
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

    def __init__(self, name, client, bootstrap, topic, group, sink, lock, instance=None, pattern=False):
        super().__init__(name=name, daemon=True)
        self.client, self.bootstrap, self.topic, self.group = client, bootstrap, topic, group
        self.pattern = pattern
        self.sink, self.lock, self.instance = sink, lock, instance
        self.assignment = []
        self.revokes = 0
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
        member = self
        if self.client == "kafka-python":
            from kafka import KafkaConsumer, ConsumerRebalanceListener

            class Listener(ConsumerRebalanceListener):
                def on_partitions_revoked(self, revoked):
                    member.revokes += 1 if revoked else 0

                def on_partitions_assigned(self, assigned):
                    pass
            c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, group_instance_id=self.instance,
                              auto_offset_reset="earliest", enable_auto_commit=True, auto_commit_interval_ms=200,
                              session_timeout_ms=6000, heartbeat_interval_ms=500, fetch_max_wait_ms=100,
                              metadata_max_age_ms=1000)
            if self.pattern:
                c.subscribe(pattern=f"^{self.topic}$", listener=Listener())
            else:
                c.subscribe([self.topic], listener=Listener())

            def poll(c):
                return [(r.partition, r.offset, r.key, r.value, r.headers, r.timestamp)
                        for records in c.poll(timeout_ms=500).values() for r in records]
            return c, poll, lambda c: sorted(tp.partition for tp in c.assignment())
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": self.bootstrap, "group.id": self.group, "auto.offset.reset": "earliest",
                "enable.auto.commit": True, "auto.commit.interval.ms": 200,
                "topic.metadata.refresh.interval.ms": 1000}
        if self.client == "confluent-classic":
            conf.update({"group.protocol": "classic", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        else:
            conf["group.protocol"] = "consumer"
        if self.instance:
            conf["group.instance.id"] = self.instance

        def on_revoke(_c, partitions):
            member.revokes += 1 if partitions else 0
        c = Consumer(conf)
        c.subscribe([f"^{self.topic}$" if self.pattern else self.topic], on_revoke=on_revoke)

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


def produce_paced(bootstrap, topic, n, tag, seconds):
    """An idempotent producer (acks=all) sending n keyed records over about
    `seconds`, refreshing metadata every second so it uses added partitions."""
    from confluent_kafka import Producer
    from kafka_clients import delivery_counter, record
    acked, errors, done = delivery_counter()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "topic.metadata.refresh.interval.ms": 1000})
    start = time.time()
    for i in range(n):
        k, v, h, ts = record(tag, i)
        p.produce(topic, key=k, value=v, headers=h, timestamp=ts, on_delivery=done)
        p.poll(0)
        wait = start + seconds * i / n - time.time()
        if wait > 0:
            time.sleep(wait)
    left = p.flush(60)
    if errors or left:
        raise SystemExit(f"delivery failed: {errors}, {left} left")


def grow(bootstrap, topic, n, start, stop, members, got, lock, stages):
    """The `grow` mode (see the module documentation)."""
    from confluent_kafka.admin import AdminClient, NewPartitions
    start("g0", pattern=True)
    start("g1", pattern=True)
    producer = threading.Thread(target=produce_paced, args=(bootstrap, topic, n, "grow", 6.0))
    producer.start()
    time.sleep(2)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_partitions([NewPartitions(topic, 6)]).values():
        f.result(10)
    producer.join(90)
    t0 = time.time()
    ok = spread_ok = False
    while time.time() - t0 < 60:
        errors = [m.error for m in members.values() if m.error]
        if errors:
            raise SystemExit("; ".join(errors))
        with lock:
            have = {r[3] for r in got}
        ok = len(have) == n
        spread_ok = spread([members["g0"], members["g1"]])
        if ok and spread_ok:
            break
        time.sleep(0.1)
    stages["grow"] = {"ok": ok, "spread": spread_ok, "assignments": {m: members[m].assignment for m in ("g0", "g1")},
                      "seconds": round(time.time() - t0, 1)}
    stop("g0")
    stop("g1")
    records = [r[1:] for r in got]
    print(json.dumps({"stages": stages, "check": check(records, n, ["grow"]),
                      "duplicates": len(records) - len({r[2] for r in records}),
                      "partitions": sorted({r[1] for r in got}),
                      "errors": [m.error for m in members.values() if m.error]}))


def main():
    mode = "churn"
    if sys.argv[1] in ("static", "grow"):
        mode = sys.argv.pop(1)
    client, bootstrap, topic, group, n = sys.argv[1:6]
    n = int(n)
    got, lock = [], threading.Lock()
    members = {}
    stages = {}

    def start(name, instance=None, pattern=False):
        members[name] = Member(name, client, bootstrap, topic, group, got, lock, instance, pattern)
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

    if mode == "grow":
        grow(bootstrap, topic, n, start, stop, members, got, lock, stages)
        return
    if mode == "static":
        start("s0", "instance-0")
        start("s1", "instance-1")
        stage("static", ["s0", "s1"])
        # Restart each in turn, so that one of the two restarts is the
        # group leader's.
        stop("s0")
        start("s0-restarted", "instance-0")
        stage("restarted-0", ["s0-restarted", "s1"])
        stop("s1")
        start("s1-restarted", "instance-1")
        stage("restarted-1", ["s0-restarted", "s1-restarted"])
        stop("s0-restarted")
        stop("s1-restarted")
        revokes = {name: m.revokes for name, m in members.items()}
        records = [r[1:] for r in got]
        print(json.dumps({"stages": stages, "check": check(records, n, ["static", "restarted-0", "restarted-1"]),
                          "duplicates": len(records) - len({r[2] for r in records}), "revokes": revokes,
                          "errors": [m.error for m in members.values() if m.error]}))
        return
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
