// kafkajs (Node.js, a Kafka client written from the protocol spec with no
// librdkafka underneath) against Strata's Kafka listener. Records are the
// same deterministic ones tests/python/kafka_clients.py builds, so each
// side checks what it got without being told what was sent.
//
//   produce BOOTSTRAP TOPIC N CODEC TAG   N keyed records with a header each
//        (CODEC: none, gzip, snappy), acks=all, idempotent; prints {"acked"}
//   consume BOOTSTRAP TOPIC GROUP N TAGS  MEMBERS=2 group consumers (classic
//        protocol) in this process read until N records of each
//        comma-separated tag arrived (60 s at most); prints the check, the
//        per-member counts and the members' final assignments
//   admin BOOTSTRAP TOPIC                 create (4 partitions,
//        retention.ms=3600000), list, describe configs, create again (false:
//        it exists), the partitions' offsets, delete, list
//
// Record i of TAG: key "TAG-i", value "value-i-" + i % 50 dots, header
// ("i", str(i)), timestamp 1700000000000 + i.
'use strict';

const { Kafka, CompressionTypes, CompressionCodecs, logLevel, ConfigResourceTypes } = require('kafkajs');
CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy');

const T0 = 1700000000000;
const record = (tag, i) => ({
  key: `${tag}-${i}`,
  value: `value-${i}-` + '.'.repeat(i % 50),
  headers: { i: String(i) },
  timestamp: String(T0 + i),
});
const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy };

function client(bootstrap) {
  return new Kafka({ clientId: 'kafkajs-test', brokers: bootstrap.split(','), logLevel: logLevel.WARN });
}

async function produce(bootstrap, topic, n, codec, tag) {
  const p = client(bootstrap).producer({ idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  let acked = 0;
  const BATCH = 2000;
  for (let start = 0; start < n; start += BATCH) {
    const messages = [];
    for (let i = start; i < Math.min(n, start + BATCH); i++) messages.push(record(tag, i));
    const res = await p.send({ topic, acks: -1, compression: CODECS[codec], messages });
    acked += messages.length;
    if (res.some((r) => r.errorCode !== 0)) throw new Error(`produce errors: ${JSON.stringify(res)}`);
  }
  await p.disconnect();
  return { acked };
}

function check(got, n, tags) {
  const bad = [];
  const seen = new Set();
  const last = new Map();
  let orderOk = true;
  for (const m of got) {
    if (last.has(m.partition) && m.offset <= last.get(m.partition)) orderOk = false;
    last.set(m.partition, m.offset);
    const cut = m.key.lastIndexOf('-');
    const tag = m.key.slice(0, cut);
    const i = Number(m.key.slice(cut + 1));
    const want = record(tag, i);
    if (!tags.includes(tag) || m.value !== want.value || m.header !== want.headers.i || m.timestamp !== want.timestamp) {
      if (bad.length < 5) bad.push(`record ${m.key}: ${m.value.slice(0, 20)} ${m.header} ${m.timestamp}`);
    }
    seen.add(m.key);
  }
  return { count: got.length, distinct: seen.size, bad, order_ok: orderOk, complete: seen.size === n * tags.length };
}

async function consume(bootstrap, topic, group, n, tags, members = 2) {
  const kafka = client(bootstrap);
  const got = [];
  const byMember = new Array(members).fill(0);
  const assignments = new Array(members).fill(null).map(() => []);
  const consumers = [];
  for (let k = 0; k < members; k++) {
    const c = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 200 });
    c.on(c.events.GROUP_JOIN, (e) => { assignments[k] = (e.payload.memberAssignment[topic] || []).slice().sort(); });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    consumers.push(c);
  }
  await Promise.all(consumers.map((c, k) => c.run({
    eachMessage: async ({ partition, message }) => {
      byMember[k] += 1;
      got.push({ partition, offset: Number(message.offset), key: message.key.toString(),
        value: message.value.toString(), header: message.headers.i && message.headers.i.toString(),
        timestamp: message.timestamp });
    },
  })));
  const deadline = Date.now() + 60000;
  const spread = () => assignments.every((a) => a.length > 0)
    && new Set(assignments.flat()).size === assignments.flat().length;
  while ((got.length < n * tags.length || !spread()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await Promise.all(consumers.map((c) => c.disconnect()));
  return { ...check(got, n, tags), by_member: byMember, assignments };
}

async function admin(bootstrap, topic) {
  const a = client(bootstrap).admin();
  await a.connect();
  const out = {};
  out.created = await a.createTopics({ topics: [{ topic, numPartitions: 4, replicationFactor: 1,
    configEntries: [{ name: 'retention.ms', value: '3600000' }] }], waitForLeaders: true });
  out.listed = (await a.listTopics()).includes(topic);
  const md = await a.fetchTopicMetadata({ topics: [topic] });
  out.partitions = md.topics[0].partitions.length;
  const cfg = await a.describeConfigs({ includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }] });
  out.configs = Object.fromEntries(cfg.resources[0].configEntries.map((e) => [e.configName, e.configValue]));
  // kafkajs resolves to false when the topic already exists.
  out.duplicate = await a.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  const offsets = await a.fetchTopicOffsets(topic);
  out.offsets = offsets.map((o) => [o.partition, o.low, o.high]).sort((x, y) => x[0] - y[0]);
  await a.deleteTopics({ topics: [topic] });
  await new Promise((r) => setTimeout(r, 500));
  out.listed_after_delete = (await a.listTopics()).includes(topic);
  await a.disconnect();
  return out;
}

async function main() {
  const [cmd, bootstrap, topic, ...rest] = process.argv.slice(2);
  let out;
  if (cmd === 'produce') out = await produce(bootstrap, topic, Number(rest[0]), rest[1], rest[2]);
  else if (cmd === 'consume') out = await consume(bootstrap, topic, rest[0], Number(rest[1]), rest[2].split(','));
  else if (cmd === 'admin') out = await admin(bootstrap, topic);
  else throw new Error(`unknown command ${cmd}`);
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
