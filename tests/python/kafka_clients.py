"""Real Kafka clients against Strata's Kafka listener: kafka-python (pure
Python) and confluent-kafka (librdkafka). Records are deterministic, so the
consumer checks what it got without being told what was sent.

  produce CLIENT BOOTSTRAP TOPIC N CODEC [TAG]   N keyed records with a
          header each, compressed with CODEC (none, gzip, snappy, lz4,
          zstd), acks=all; prints {"acked": n}
  consume CLIENT BOOTSTRAP TOPIC N TAGS          reads every partition from
          the beginning (assigned, no group) until N records of each of the
          comma-separated TAGS arrived or 60 s passed; prints {"count",
          "distinct", "bad": [first few problems], "order_ok", "complete"}
  metadata confluent BOOTSTRAP TOPIC              asks for TOPIC's metadata
          (allowing auto-creation); prints {"error", "partitions"}
  offsets-and-dirs BOOTSTRAP TOPIC                ListOffsets specs, DescribeLogDirs,
          DeleteTopics by id; prints what each saw
  epochs BOOTSTRAP TOPIC EPOCH                   Fetch v12 and ListOffsets v7 with
          current leader epochs around EPOCH (kafka-python's codec, raw
          socket); prints error codes
  scram-users BOOTSTRAP USER PASSWORD            Kafka's user admin APIs through
          librdkafka: create, describe, produce as the user, delete
  paced confluent BOOTSTRAP TOPIC N RATE TAG       an idempotent acks=all
          producer sending N records at RATE/s; prints {"acked", "errors", "left"}
  commit kafka-python BOOTSTRAP TOPIC GROUP OFFSET  commits OFFSET+p for
          every partition p (assigned, no membership) and reads it back
  groups confluent BOOTSTRAP TOPIC GROUP           lists groups, the group's
          offsets, deletes the group, lists again
  admin CLIENT BOOTSTRAP TOPIC                    creates TOPIC (4 partitions,
          retention.ms=3600000), lists topics, describes its configs and the
          cluster, deletes it and lists again; prints what each step saw

With STRATA_TEST_KAFKA_SSL_CA=CA.pem, produce and consume connect over TLS
trusting that CA; with STRATA_TEST_KAFKA_SASL=MECHANISM:user:password they
authenticate with SASL (SASL_SSL or SASL_PLAINTEXT).

Record i of TAG: key "TAG-i", value "value-i-" + i % 50 dots, header
("i", str(i)), timestamp 1700000000000 + i.
"""
import json
import sys
import time

T0 = 1_700_000_000_000


def sasl_settings():
    """(mechanism, user, password) from STRATA_TEST_KAFKA_SASL
    ("MECHANISM:user:password"), or None."""
    import os
    v = os.environ.get("STRATA_TEST_KAFKA_SASL")
    return tuple(v.split(":", 2)) if v else None


def confluent_security():
    """librdkafka settings: TLS when STRATA_TEST_KAFKA_SSL_CA names the CA
    to trust, SASL when STRATA_TEST_KAFKA_SASL is set (plaintext otherwise)."""
    import os
    ca = os.environ.get("STRATA_TEST_KAFKA_SSL_CA")
    sasl = sasl_settings()
    out = {"ssl.ca.location": ca} if ca else {}
    if sasl:
        out.update({"sasl.mechanisms": sasl[0], "sasl.username": sasl[1], "sasl.password": sasl[2]})
    out["security.protocol"] = ("SASL_" if sasl else "") + ("SSL" if ca else "PLAINTEXT")
    return out


def kafka_python_security():
    """kafka-python settings for the same."""
    import os
    ca = os.environ.get("STRATA_TEST_KAFKA_SSL_CA")
    sasl = sasl_settings()
    out = {"ssl_cafile": ca} if ca else {}
    if sasl:
        out.update({"sasl_mechanism": sasl[0], "sasl_plain_username": sasl[1], "sasl_plain_password": sasl[2]})
    out["security_protocol"] = ("SASL_" if sasl else "") + ("SSL" if ca else "PLAINTEXT")
    return out


def record(tag, i):
    return (f"{tag}-{i}".encode(), (f"value-{i}-" + "." * (i % 50)).encode(), [("i", str(i).encode())], T0 + i)


def produce_kafka_python(bootstrap, topic, n, codec, tag):
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                      compression_type=None if codec == "none" else codec,
                      batch_size=64 * 1024, max_request_size=4 << 20, **kafka_python_security())
    futures = []
    for i in range(n):
        k, v, h, ts = record(tag, i)
        futures.append(p.send(topic, key=k, value=v, headers=h, timestamp_ms=ts))
    p.flush(60)
    acked = sum(1 for f in futures if f.get(timeout=60) is not None)
    p.close()
    return acked


def delivery_counter():
    """([delivered], [first errors], the delivery callback that fills them)."""
    acked = [0]
    errors = []

    def done(err, _msg):
        if err is None:
            acked[0] += 1
        elif len(errors) < 5:
            errors.append(str(err))

    return acked, errors, done


def produce_confluent(bootstrap, topic, n, codec, tag):
    from confluent_kafka import Producer
    acked, errors, done = delivery_counter()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": codec, "enable.idempotence": True, **confluent_security()})
    for i in range(n):
        k, v, h, ts = record(tag, i)
        while True:
            try:
                p.produce(topic, key=k, value=v, headers=h, timestamp=ts, on_delivery=done)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60)
    if errors or left:
        raise SystemExit(f"delivery failed: {errors}, {left} left")
    return acked[0]


def check(got, n, tags):
    """got: (partition, offset, key, value, headers, timestamp) tuples."""
    bad = []
    seen = set()
    last = {}
    order_ok = True
    for partition, offset, key, value, headers, ts in got:
        if partition in last and offset <= last[partition]:
            order_ok = False
        last[partition] = offset
        try:
            tag, i = key.decode().rsplit("-", 1)
            i = int(i)
        except Exception:
            bad.append(f"key {key!r}")
            continue
        k, v, h, t = record(tag, i)
        if tag not in tags or (key, value, [(a, bytes(b)) for a, b in headers], ts) != (k, v, h, t):
            bad.append(f"record {tag}-{i}: {key!r} {value[:20]!r} {headers} {ts}")
        seen.add((tag, i))
    want = {(tag, i) for tag in tags for i in range(n)}
    return {"count": len(got), "distinct": len(seen), "bad": bad[:5], "order_ok": order_ok, "complete": seen == want}


def consume_kafka_python(bootstrap, topic, n, tags):
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                      fetch_max_wait_ms=200, **kafka_python_security())
    parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    got = []
    deadline = time.time() + 60
    while len(got) < n * len(tags) and time.time() < deadline:
        for _tp, records in c.poll(timeout_ms=500).items():
            for r in records:
                got.append((r.partition, r.offset, r.key, r.value, r.headers, r.timestamp))
    c.close()
    return check(got, n, tags)


def consume_confluent(bootstrap, topic, n, tags):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-assign-only",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 200, **confluent_security()})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(md.topics[topic].partitions)]
    c.assign(parts)
    got = []
    deadline = time.time() + 60
    while len(got) < n * len(tags) and time.time() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.5):
            if m.error():
                raise SystemExit(f"consume error: {m.error()}")
            got.append((m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
    c.close()
    return check(got, n, tags)


def admin_kafka_python(bootstrap, topic):
    from kafka.admin import KafkaAdminClient, NewTopic, ConfigResource, ConfigResourceType
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    out = {}
    a.create_topics([NewTopic(topic, 4, 1, topic_configs={"retention.ms": "3600000"})])
    out["listed"] = topic in a.list_topics()
    described = a.describe_topics([topic])
    out["partitions"] = len(described[0]["partitions"])
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    out["configs"] = {k: v["value"] for k, v in res["topic"][topic].items()}
    try:
        a.create_topics([NewTopic(topic, 1, 1)])
        out["duplicate"] = "accepted"
    except Exception as e:  # TopicAlreadyExistsError
        out["duplicate"] = type(e).__name__
    out["cluster_brokers"] = len(a.describe_cluster()["brokers"])
    a.delete_topics([topic])
    time.sleep(0.5)
    out["listed_after_delete"] = topic in a.list_topics()
    a.close()
    return out


def admin_confluent(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource
    from confluent_kafka import KafkaException
    a = AdminClient({"bootstrap.servers": bootstrap})
    out = {}
    for f in a.create_topics([NewTopic(topic, 4, 1, config={"retention.ms": "3600000"})]).values():
        f.result(10)
    md = a.list_topics(timeout=10)
    out["listed"] = topic in md.topics
    out["partitions"] = len(md.topics[topic].partitions)
    for f in a.describe_configs([ConfigResource("topic", topic)]).values():
        out["configs"] = {k: v.value for k, v in f.result(10).items()}
    try:
        for f in a.create_topics([NewTopic(topic, 1, 1)]).values():
            f.result(10)
        out["duplicate"] = "accepted"
    except KafkaException as e:
        out["duplicate"] = e.args[0].name()
    out["cluster_brokers"] = len(a.describe_cluster().result(10).nodes)
    for f in a.delete_topics([topic]).values():
        f.result(10)
    time.sleep(0.5)
    out["listed_after_delete"] = topic in a.list_topics(timeout=10).topics
    return out


def alter_configs(bootstrap, topic):
    """Topic configs changed through two clients' admin APIs: confluent-kafka's
    IncrementalAlterConfigs (SET, DELETE) and legacy AlterConfigs (replace),
    kafka-python's alter_configs, each read back with the other client's
    DescribeConfigs."""
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource)
    from kafka.admin import KafkaAdminClient, ConfigResource as KResource, ConfigResourceType
    a = AdminClient({"bootstrap.servers": bootstrap, **confluent_security()})
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_python_security())
    out = {}

    def kafka_python_configs():
        res = kp.describe_configs([KResource(ConfigResourceType.TOPIC, topic)])
        return {k: v["value"] for k, v in res["topic"][topic].items()}

    def confluent_configs():
        for f in a.describe_configs([ConfigResource("topic", topic)]).values():
            return {k: v.value for k, v in f.result(10).items()}

    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
    ])
    for f in a.incremental_alter_configs([resource]).values():
        f.result(10)
    time.sleep(0.5)
    got = kafka_python_configs()
    out["after_incremental_set"] = {k: got.get(k) for k in ("retention.ms", "max.message.bytes")}
    for f in a.describe_configs([ConfigResource("topic", topic)]).values():
        entries = f.result(10)
        # Kafka's ConfigSource: 1 the topic's own, 5 the default.
        out["sources"] = {k: int(entries[k].source) for k in ("retention.ms", "segment.bytes")}
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    for f in a.incremental_alter_configs([resource]).values():
        f.result(10)
    time.sleep(0.5)
    got = kafka_python_configs()
    out["after_incremental_delete"] = {k: got.get(k) for k in ("retention.ms", "max.message.bytes")}
    # kafka-python's alter_configs (IncrementalAlterConfigs SET here).
    kp.alter_configs([KResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "600000"})])
    time.sleep(0.5)
    got = confluent_configs()
    out["after_kafka_python_set"] = {k: got.get(k) for k in ("retention.ms", "segment.ms")}
    # confluent-kafka's legacy alter_configs: AlterConfigs, which replaces
    # the whole set (every key not given returns to its default).
    for f in a.alter_configs([ConfigResource("topic", topic, set_config={"segment.bytes": "1048576"})]).values():
        f.result(10)
    time.sleep(0.5)
    got = kafka_python_configs()
    out["after_replace"] = {k: got.get(k) for k in ("retention.ms", "segment.ms", "segment.bytes")}
    try:
        resource = ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry("no.such.config", "1", incremental_operation=AlterConfigOpType.SET)])
        for f in a.incremental_alter_configs([resource]).values():
            f.result(10)
        out["unknown_key"] = "accepted"
    except Exception as e:  # the client's KafkaException
        out["unknown_key"] = e.args[0].name()
    kp.close()
    return out


def create_partitions(bootstrap, topic, count):
    """confluent-kafka's CreatePartitions to `count`, read back with
    kafka-python; then a shrink, which must be refused."""
    from confluent_kafka.admin import AdminClient, NewPartitions
    from kafka.admin import KafkaAdminClient
    a = AdminClient({"bootstrap.servers": bootstrap, **confluent_security()})
    out = {}
    for f in a.create_partitions([NewPartitions(topic, count)]).values():
        f.result(10)
    time.sleep(0.5)
    kp = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **kafka_python_security())
    out["partitions"] = len(kp.describe_topics([topic])[0]["partitions"])
    kp.close()
    try:
        for f in a.create_partitions([NewPartitions(topic, 2)]).values():
            f.result(10)
        out["shrink"] = "accepted"
    except Exception as e:  # the client's KafkaException
        out["shrink"] = e.args[0].name()
    return out


def delete_records(bootstrap, topic, partition, before):
    """confluent-kafka's DeleteRecords: the partition's new low watermark."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap, **confluent_security()})
    for f in a.delete_records([TopicPartition(topic, partition, before)]).values():
        return {"low_watermark": f.result(10).low_watermark}


def delete_records_kafka_python(bootstrap, topic, partition, before):
    """kafka-python's DeleteRecords: the partition's new low watermark."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    res = a.delete_records({TopicPartition(topic, partition): before})
    a.close()
    for meta in res.values():
        return {"low_watermark": meta["low_watermark"] if isinstance(meta, dict) else meta.low_watermark}


def reassign(bootstrap, topic, partition, replicas):
    """kafka-python's AlterPartitionReassignments: moves one partition to
    `replicas` (comma-separated ids); the per-partition error, if any."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    target = [int(r) for r in replicas.split(",")]
    res = a.alter_partition_reassignments({TopicPartition(topic, partition): target})
    a.close()
    return {f"{tp.topic}-{tp.partition}": (None if e is None else e.__name__) for tp, e in res.items()}


def list_reassignments(bootstrap):
    """kafka-python's ListPartitionReassignments: the moves in progress."""
    from kafka.admin import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    res = a.list_partition_reassignments()
    a.close()
    return {f"{tp.topic}-{tp.partition}": v for tp, v in res.items()}


def cluster_defaults(bootstrap, topic, key, value):
    """A cluster-wide topic default through Kafka's default broker resource
    (type BROKER, empty name, as `kafka-configs.sh --entity-default` sends
    it). confluent-kafka and kafka-python refuse an empty broker name in
    their admin APIs, so the IncrementalAlterConfigs v1 and DescribeConfigs
    v4 requests are encoded and decoded by kafka-python's protocol classes
    over a plain socket; the topic is then described by confluent-kafka.
    Returns [value, source code] for the broker resource and the topic."""
    from confluent_kafka.admin import AdminClient, ConfigResource
    from kafka.protocol.admin import (DescribeConfigsRequest, DescribeConfigsResponse,
                                      IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse)
    s, call = raw_connection(bootstrap)

    cfg = IncrementalAlterConfigsRequest.AlterConfigsResource.AlterableConfig(name=key, config_operation=0, value=value)
    req = IncrementalAlterConfigsRequest(validate_only=False, resources=[
        IncrementalAlterConfigsRequest.AlterConfigsResource(resource_type=4, resource_name="", configs=[cfg])])
    r = call(req, IncrementalAlterConfigsResponse, 1, 1)
    out = {"alter_error": r.responses[0].error_code}
    req = DescribeConfigsRequest(include_synonyms=False, include_documentation=False, resources=[
        DescribeConfigsRequest.DescribeConfigsResource(resource_type=4, resource_name="", configuration_keys=[key])])
    r = call(req, DescribeConfigsResponse, 4, 2)
    for c in r.results[0].configs:
        out["broker"] = [c.value, c.config_source]
    s.close()
    time.sleep(0.5)
    a = AdminClient({"bootstrap.servers": bootstrap})
    for f in a.describe_configs([ConfigResource("topic", topic)]).values():
        e = f.result(10)[key]
        out["topic"] = [e.value, int(e.source)]
    return out


def offsets_and_dirs(bootstrap, topic):
    """ListOffsets specs (v7 max timestamp, v8 earliest local, v9 latest
    tiered) through kafka-python's and librdkafka's admin clients,
    DescribeLogDirs through kafka-python, and DeleteTopics by topic id
    (v6) through kafka-python. Partition 0 gets five records whose
    timestamps peak twice (offsets 1 and 3)."""
    import uuid
    from confluent_kafka import Producer, TopicPartition as CTP
    from confluent_kafka.admin import AdminClient, OffsetSpec as COffsetSpec
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic, OffsetSpec
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    a.create_topics([NewTopic(topic, 2, 1)])
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i, ts in enumerate([1000, 5000, 3000, 5000, 2000]):
        p.produce(topic, key=b"k", value=f"v{i}".encode(), partition=0, timestamp=T0 + ts)
        p.flush(10)
    out = {}
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    specs = {"max": OffsetSpec.MAX_TIMESTAMP, "earliest_local": OffsetSpec.EARLIEST_LOCAL,
             "latest_tiered": OffsetSpec.LATEST_TIERED, "latest": OffsetSpec.LATEST}
    for name, spec in specs.items():
        got = a.list_partition_offsets({tp0: spec, tp1: spec})
        out[name] = [[got[tp].offset, got[tp].timestamp] for tp in (tp0, tp1)]
    c = AdminClient({"bootstrap.servers": bootstrap})
    res = c.list_offsets({CTP(topic, 0): COffsetSpec.max_timestamp()})
    for f in res.values():
        r = f.result(10)
        out["max_librdkafka"] = [r.offset, r.timestamp]
    dirs = a.describe_log_dirs()
    sizes = {}
    for broker in dirs:
        for d in broker["log_dirs"]:
            out["dir_bytes"] = [d["total_bytes"], d["usable_bytes"]]
            for t in d["topics"]:
                if t["name"] == topic:
                    sizes.update({str(q["partition_index"]): q["partition_size"] for q in t["partitions"]})
    out["sizes"] = sizes
    topic_id = next(t["topic_id"] for t in a.describe_topics([topic]))
    out["deleted"] = [[r["name"], r["error_code"]] for r in a.delete_topics([uuid.UUID(str(topic_id))])["topics"]]
    try:
        a.delete_topics([uuid.uuid4()])
        out["unknown_id"] = "accepted"
    except Exception as e:
        out["unknown_id"] = type(e).__name__
    time.sleep(0.5)
    out["listed_after_delete"] = topic in a.list_topics()
    a.close()
    return out


def raw_connection(bootstrap):
    """A plain socket to the first broker of `bootstrap` and a call(request,
    response class, version, correlation id) that encodes and decodes with
    kafka-python's protocol classes: requests its admin API will not send."""
    import socket
    import struct
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)

    def call(req, resp_cls, version, correlation):
        req.with_header(correlation_id=correlation)
        s.sendall(req.encode(version=version, header=True, framed=True))
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
        return resp_cls.decode(data, version=version, header=True)
    return s, call


def epoch_checks(bootstrap, topic, epoch):
    """Fetch v12 and ListOffsets v7 of partition 0 with current leader
    epochs epoch-1, epoch, epoch+1 and -1, encoded and decoded by
    kafka-python's protocol classes over a plain socket; prints the error
    codes and how many record bytes each fetch returned."""
    from kafka.protocol.consumer import FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse
    s, call = raw_connection(bootstrap)

    out = {"fetch": {}, "list_offsets": {}}
    for i, current in enumerate([epoch - 1, epoch, epoch + 1, -1]):
        part = FetchRequest.FetchTopic.FetchPartition(partition=0, current_leader_epoch=current, fetch_offset=0,
                                                      last_fetched_epoch=-1, log_start_offset=-1,
                                                      partition_max_bytes=1 << 20)
        req = FetchRequest(replica_id=-1, max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                           session_id=0, session_epoch=-1,
                           topics=[FetchRequest.FetchTopic(topic=topic, partitions=[part])],
                           forgotten_topics_data=[], rack_id="")
        r = call(req, FetchResponse, 12, 2 * i)
        p = r.responses[0].partitions[0]
        out["fetch"][str(current)] = [p.error_code, len(p.records or b"")]
        lp = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(partition_index=0, current_leader_epoch=current,
                                                                      timestamp=-1)
        req = ListOffsetsRequest(replica_id=-1, isolation_level=0,
                                 topics=[ListOffsetsRequest.ListOffsetsTopic(name=topic, partitions=[lp])])
        r = call(req, ListOffsetsResponse, 7, 2 * i + 1)
        p = r.topics[0].partitions[0]
        out["list_offsets"][str(current)] = [p.error_code, p.offset]
    s.close()
    return out


def scram_users_confluent(bootstrap, user, password):
    """Creates USER with PASSWORD (SCRAM-SHA-256, salted by librdkafka)
    through Kafka's AlterUserScramCredentials, describes it, produces as it,
    deletes it and describes again; prints what each step saw."""
    from confluent_kafka import Producer, KafkaException
    from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion, UserScramCredentialDeletion)
    a = AdminClient({"bootstrap.servers": bootstrap, **confluent_security()})
    out = {}
    up = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode())
    for f in a.alter_user_scram_credentials([up]).values():
        f.result(10)
    desc = a.describe_user_scram_credentials([user])[user].result(10)
    out["described"] = [[str(i.mechanism).split(".")[-1], i.iterations] for i in desc.scram_credential_infos]
    sec = dict(confluent_security())
    sec.update({"sasl.mechanisms": "SCRAM-SHA-256", "sasl.username": user, "sasl.password": password})
    acked, errors, done = delivery_counter()
    p = Producer({"bootstrap.servers": bootstrap, **sec})
    p.produce("as-new-user", value=b"hello", on_delivery=done)
    p.flush(15)
    out["produced_as_user"] = acked[0]
    out["produce_errors"] = errors
    for f in a.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_256)]).values():
        f.result(10)
    try:
        a.describe_user_scram_credentials([user])[user].result(10)
        out["after_delete"] = "found"
    except KafkaException as e:
        out["after_delete"] = e.args[0].name()
    return out


def metadata_confluent(bootstrap, topic):
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap, "allow.auto.create.topics": True}).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    return {"error": t.error.name() if t is not None and t.error else None,
            "partitions": 0 if t is None else len(t.partitions)}


def commit_kafka_python(bootstrap, topic, group, offset):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
    c.assign(tps)
    c.commit({tp: OffsetAndMetadata(offset + tp.partition, "from kafka-python", -1) for tp in tps})
    out = {"committed": {str(tp.partition): c.committed(tp) for tp in tps}}
    c.close()
    return out


def groups_confluent(bootstrap, topic, group):
    from confluent_kafka.admin import AdminClient
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = AdminClient({"bootstrap.servers": bootstrap})
    out = {}
    listed = a.list_consumer_groups().result(10)
    out["listed"] = sorted(g.group_id for g in listed.valid)
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    for f in res.values():
        out["offsets"] = {str(tp.partition): tp.offset for tp in f.result(10).topic_partitions if tp.topic == topic}
    for f in a.delete_consumer_groups([group]).values():
        f.result(10)
    out["listed_after_delete"] = sorted(g.group_id for g in a.list_consumer_groups().result(10).valid)
    return out


def produce_paced(bootstrap, topic, n, rate, tag):
    """An idempotent librdkafka producer (acks=all) sending n records at
    about `rate`/s, so a broker can be killed while it runs; every record
    must be delivered (librdkafka retries through leader changes)."""
    from confluent_kafka import Producer
    acked, errors, done = delivery_counter()

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 120000})
    start = time.time()
    for i in range(n):
        k, v, h, ts = record(tag, i)
        p.produce(topic, key=k, value=v, headers=h, timestamp=ts, on_delivery=done)
        p.poll(0)
        wait = start + i / rate - time.time()
        if wait > 0:
            time.sleep(wait)
    left = p.flush(120)
    return {"acked": acked[0], "errors": errors, "left": left}


def main():
    if sys.argv[1] == "paced":
        _, _, _, bootstrap, topic, n, rate, tag = sys.argv
        print(json.dumps(produce_paced(bootstrap, topic, int(n), float(rate), tag)))
        return
    if sys.argv[1] == "commit":
        print(json.dumps(commit_kafka_python(sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))))
        return
    if sys.argv[1] == "groups":
        print(json.dumps(groups_confluent(sys.argv[3], sys.argv[4], sys.argv[5])))
        return
    if sys.argv[1] == "reassign":
        print(json.dumps(reassign(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])))
        return
    if sys.argv[1] == "list-reassignments":
        print(json.dumps(list_reassignments(sys.argv[2])))
        return
    if sys.argv[1] == "cluster-defaults":
        print(json.dumps(cluster_defaults(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])))
        return
    if sys.argv[1] == "delete-records-kafka-python":
        print(json.dumps(delete_records_kafka_python(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
        return
    if sys.argv[1] == "delete-records":
        print(json.dumps(delete_records(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
        return
    if sys.argv[1] == "create-partitions":
        print(json.dumps(create_partitions(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    if sys.argv[1] == "alter-configs":
        print(json.dumps(alter_configs(sys.argv[2], sys.argv[3])))
        return
    if sys.argv[1] == "offsets-and-dirs":
        print(json.dumps(offsets_and_dirs(sys.argv[2], sys.argv[3])))
        return
    if sys.argv[1] == "epochs":
        print(json.dumps(epoch_checks(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    if sys.argv[1] == "scram-users":
        print(json.dumps(scram_users_confluent(sys.argv[2], sys.argv[3], sys.argv[4])))
        return
    if sys.argv[1] == "metadata":
        print(json.dumps(metadata_confluent(sys.argv[3], sys.argv[4])))
        return
    if sys.argv[1] == "admin":
        client, bootstrap, topic = sys.argv[2:5]
        f = admin_kafka_python if client == "kafka-python" else admin_confluent
        print(json.dumps(f(bootstrap, topic)))
        return
    cmd, client, bootstrap, topic, n = sys.argv[1:6]
    n = int(n)
    if cmd == "produce":
        codec = sys.argv[6]
        tag = sys.argv[7] if len(sys.argv) > 7 else codec
        f = produce_kafka_python if client == "kafka-python" else produce_confluent
        print(json.dumps({"acked": f(bootstrap, topic, n, codec, tag)}))
    elif cmd == "consume":
        tags = sys.argv[6].split(",")
        f = consume_kafka_python if client == "kafka-python" else consume_confluent
        print(json.dumps(f(bootstrap, topic, n, tags)))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
